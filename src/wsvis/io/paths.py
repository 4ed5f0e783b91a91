"""Names that become path components (dataset and video names).

A video name comes from a folder name, a JSON file or a config file; it is
used to build ``results/{dataset}/flow/{video}.zarr``. A name such as
``../x`` or ``a/b`` would escape that folder, so every name is checked here
before any path is built from it.
"""

from __future__ import annotations

import re

__all__ = ["check_name", "NAME_PATTERN"]

#: Letters, digits, ``_``, ``-``, ``.`` and ``+``; starts with a letter or digit.
#: Also the wildcard constraint of the Snakemake rules.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"
_NAME_RE = re.compile(NAME_PATTERN)


def check_name(name: object, what: str = "video") -> str:
    """Return ``name`` if it is a plain path component, else raise.

    Args:
        name: the candidate name.
        what: what it names, for the message (``"video"``, ``"dataset"``).

    Raises:
        ValueError: ``name`` is not a string, is empty, contains a path
            separator, is ``.``/``..``, or has characters outside
            :data:`NAME_PATTERN`.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in {".", ".."}:
        raise ValueError(
            f"{what} name {name!r} is not a plain path component: use letters, digits, '_', '-', "
            f"'.', '+' and start with a letter or digit (it becomes a folder under results/)"
        )
    return name
