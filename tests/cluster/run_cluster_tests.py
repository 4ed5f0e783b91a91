"""Cluster and fault tests on the tiny workflow (tests/tinyflow.py): run by .ci/run.

0. kubernetes: a dry run through workflow/profiles/kubernetes with S3 default storage, served
   locally by moto_server (no cluster is run).
1. reference: the workflow run locally (``--cores 2``), timed; per-rule job durations recorded.
2. faults: for every stage in the order it first ran, the workflow is started again and the
   whole Snakemake process group is SIGKILLed at a random point of that stage's first job (a
   crashed node: no cleanup runs; a training right after its first checkpoint, so it resumes).
   After each kill no final-named Zarr group is incomplete; the next start uses
   ``--rerun-incomplete``. At the end, every artifact equals the reference.
3. slurm: a single-node Slurm cluster on localhost (tests/cluster/slurm_cluster.sh) runs the
   workflow through workflow/profiles/slurm. The segmenter training job is cancelled with
   scancel once it has written a checkpoint (preemption); the profile's retry resumes it from
   that checkpoint. Every artifact must equal the reference, and the jobs' cpus, memory, time
   limit and GPU requests must be those of the rules. Skipped, with the reason printed, only
   when Slurm cannot be installed.

The Slurm run goes alongside parts 1 and 2 (a thread of its own; it compares with the reference
once that has finished): the executor plugin sleeps between status checks (10 s longer after
every check that saw no job finish, up to 180 s), so run alone it kept the 2 cores idle for much
of its wall time. Every run is deterministic on CPU, so sharing the cores changes timings only.

    python tests/cluster/run_cluster_tests.py [--only faults|slurm] [--seed N] [--keep DIR]

Exit status 0 when every part passed (or Slurm was skipped), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cluster.compare import compare_results  # noqa: E402
from tinyflow import REPO, tiny_workflow  # noqa: E402

from wsvis.io.store import ArtifactError, open_artifact  # noqa: E402

RESULTS = "results/clip"
# The rule whose Slurm job is preempted; it checkpoints every iteration.
PREEMPTED_RULE = "train_segmenter"
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")


# Trainings take both cores (the rules' default is half of --cores), so they run one at a time: a
# checkpoint newer than a training's start is that training's (faults), and every run, local or
# Slurm, trains at one thread count, so its float sums and artifacts equal the reference's.
TRAINING_THREADS = ("--set-threads", "train_cam=2", "train_irn=2", "train_segmenter=2")


def snakemake_cmd(workdir: Path, *extra: str) -> list[str]:
    return ["snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
            str(workdir.parent / "config.yaml"), *TRAINING_THREADS, *extra]


class Run:
    """A Snakemake run in its own process group, its output parsed for job starts and ends."""

    #: Process groups of the runs not waited for yet (killed when the tests are interrupted).
    live: set[int] = set()

    def __init__(self, cmd: list[str], log: Path, env: dict | None = None) -> None:
        self.log = log.open("a", buffering=1)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True, env=env)
        Run.live.add(self.proc.pid)
        self.started: dict[str, float] = {}   # jobid -> start time
        self.rule_of: dict[str, str] = {}     # jobid -> rule
        self.durations: dict[str, list[float]] = {}
        self.first_start: dict[str, float] = {}  # rule -> first start
        self._rule: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.log.write(line)
            now = time.monotonic()
            if m := START.match(line):
                self._rule = m.group(1)
            elif (m := JOBID.match(line)) and self._rule:
                self.started[m.group(1)] = now
                self.rule_of[m.group(1)] = self._rule
                self.first_start.setdefault(self._rule, now)
                self._rule = None
            elif (m := FINISHED.match(line)) and m.group(1) in self.started:
                rule = self.rule_of[m.group(1)]
                self.durations.setdefault(rule, []).append(now - self.started[m.group(1)])
        self.log.flush()

    def wait(self) -> int:
        code = self.proc.wait()
        self._reader.join()
        Run.live.discard(self.proc.pid)
        return code

    def kill(self) -> None:
        """SIGKILL Snakemake and every job it started (the whole process group)."""
        _kill_group(self.proc.pid)
        self.wait()


def _kill_group(pgid: int) -> None:
    """SIGKILL a process group (a crashed node: no cleanup runs); gone already is fine."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def incomplete_zarrs(results: Path) -> list[str]:
    """Final-named Zarr groups that a reader would refuse (temporaries start with '.')."""
    bad = []
    for path in results.rglob("*.zarr"):
        if path.name.startswith(".") or any(p.startswith(".") for p in path.relative_to(results).parts):
            continue
        try:
            open_artifact(path)
        except (ArtifactError, FileNotFoundError, ValueError) as err:
            bad.append(f"{path.relative_to(results)}: {err}")
    return bad


def checkpoint_written_since(results: Path, since: float) -> bool:
    """Whether a resume checkpoint (``**/checkpoints/ckpt_*.pt``) was written after ``since`` (time.time())."""
    return any(_mtime(p) > since for p in results.rglob("checkpoints/ckpt_*.pt"))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # replaced by a newer checkpoint meanwhile
        return 0.0


def reference_run(root: Path) -> tuple[float, dict[str, float], list[str]]:
    """Local run: wall seconds, median job seconds per rule, rules in order of first start."""
    t0 = time.monotonic()
    run = Run(snakemake_cmd(root / "ref", "--cores", "2"), root / "ref.log")
    if run.wait() != 0:
        raise SystemExit(f"reference run failed; see {root / 'ref.log'}")
    wall = time.monotonic() - t0
    median = {r: sorted(d)[len(d) // 2] for r, d in run.durations.items()}
    order = sorted(run.first_start, key=run.first_start.get)
    return wall, median, [r for r in order if r != "all"]


def unlock(workdir: Path) -> None:
    """What a user does after a crash: a killed Snakemake leaves its directory lock behind."""
    subprocess.run(snakemake_cmd(workdir, "--unlock"), capture_output=True, check=True)


def fault_run(root: Path, median: dict[str, float], order: list[str], rng: random.Random) -> list[str]:
    """Kill the workflow once inside each stage; return the problems found (empty: passed).

    Each restart is killed inside the first job it starts of a stage not killed yet, after a
    random fraction of that stage's median job time in the reference run; a training stage
    (``train_*``) as soon as it has written a checkpoint in this restart (or after twice its
    median time if it writes none), so that its rerun must resume: rebuild the same weights
    and the same train_log.csv from the checkpoint (Snakemake deletes the log before the rerun).
    """
    work = root / "faults"
    problems = []
    remaining = list(order)
    expect_resume: set[str] = set()  # training stages killed after a checkpoint
    print(f"{'stage':22s} {'killed after':>12s} {'job median':>10s}  result")
    while remaining:
        unlock(work)
        run = Run(snakemake_cmd(work, "--cores", "2", "--rerun-incomplete"), root / "faults.log")
        rule = None
        while rule is None and run.proc.poll() is None:
            rule = next((r for r in remaining if r in run.first_start), None)
            time.sleep(0.02)
        rule = rule or next((r for r in remaining if r in run.first_start), None)
        if rule is None:  # the run ended: the stages left had no job to do any more
            if run.wait() != 0:
                problems.append(f"a restart failed; see {root / 'faults.log'}")
            for r in remaining:
                print(f"{r:22s} {'-':>12s} {median.get(r, 0):9.1f}s  not hit (done while another stage was killed)")
            break
        remaining.remove(rule)
        delay = rng.uniform(0.1, 0.9) * median.get(rule, 1.0)
        if rule.startswith("train_"):
            delay = 2.0 * median.get(rule, 1.0)
            # Trainings run one at a time (threads = cores): a checkpoint newer than this job's
            # start is this job's.
            started = time.time() - (time.monotonic() - run.first_start[rule])
            while run.proc.poll() is None and time.monotonic() < run.first_start[rule] + delay:
                if checkpoint_written_since(work / RESULTS, since=started):
                    expect_resume.add(rule)
                    break
                time.sleep(0.02)
            delay = time.monotonic() - run.first_start[rule]
        time.sleep(max(0.0, run.first_start[rule] + delay - time.monotonic()))
        ended = run.proc.poll() is not None
        run.kill()
        bad = incomplete_zarrs(work / RESULTS)
        problems += [f"after killing {rule}: incomplete artifact {b}" for b in bad]
        state = "run had ended" if ended else ("incomplete Zarr left!" if bad else "killed; no incomplete artifact")
        print(f"{rule:22s} {delay:11.2f}s {median.get(rule, 0):9.1f}s  {state}")
    unlock(work)
    final = Run(snakemake_cmd(work, "--cores", "2", "--rerun-incomplete"), root / "faults.log")
    if final.wait() != 0:
        return problems + [f"rerun after the kills failed; see {root / 'faults.log'}"]
    logs = work / RESULTS / "logs"
    resumed = sorted(str(p.relative_to(logs).with_suffix("")) for p in logs.rglob("*.log")
                     if "resuming" in p.read_text(errors="replace"))
    print(f"trainings that resumed from a checkpoint after a kill: {', '.join(resumed) or 'none'}")
    problems += [f"{rule} was killed after a checkpoint but no {rule} job resumed from it"
                 for rule in sorted(expect_resume) if not any(r == rule or r.startswith(f"{rule}/") for r in resumed)]
    return problems + compare_results(root / "ref" / RESULTS, work / RESULTS)


def slurm_jobs(env: dict) -> list[dict[str, str]]:
    """Every job the controller still knows (MinJobAge keeps finished ones), as key=value dicts."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, env=env).stdout
    jobs = []
    for line in out.splitlines():
        if line.startswith("JobId="):
            jobs.append(dict(kv.split("=", 1) for kv in re.findall(r"(\w[\w/:]*=\S*)", line)))
    return jobs


def preempt(work: Path, env: dict, done: threading.Event, report: dict) -> None:
    """Cancel the first running segmenter training once it has written a checkpoint."""
    prefix = f"rule_{PREEMPTED_RULE}_wildcards_"
    while not done.is_set():
        for job in slurm_jobs(env):
            comment = job.get("Comment", "")
            if job.get("JobState") != "RUNNING" or not comment.startswith(prefix):
                continue
            run = comment[len(prefix):]
            ckpts = sorted((work / RESULTS / "models" / run / "checkpoints").glob("ckpt_*.pt"))
            if ckpts:
                subprocess.run(["scancel", job["JobId"]], env=env, check=True)
                report.update(job=job["JobId"], checkpoint=ckpts[0].name, run=run)
                return
        time.sleep(0.1)


def check_resources(jobs: list[dict[str, str]]) -> list[str]:
    """The submitted jobs carry the rules' cpus, memory, time limit and GPU request."""
    problems = []
    by_rule: dict[str, dict[str, str]] = {}
    for job in jobs:
        m = re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", job.get("Comment", ""))
        if m:
            by_rule.setdefault(m.group(1), job)

    def gpus(job: dict[str, str]) -> bool:  # --gpus=1 shows as TresPerJob=gres:gpu:1
        return "gpu" in " ".join(job.get(k, "") for k in ("TRES", "TresPerJob", "TresPerNode"))

    expected = {  # rule -> (substrings of TRES, time limit, asks for a GPU) from rules/*.smk
        "train_segmenter": (["cpu=2", "mem=12000M"], "2-00:00:00", True),
        "train_cam": (["cpu=2", "mem=8000M"], "12:00:00", True),
        "summary": (["cpu=1", "mem=1000M"], "00:10:00", False),
    }
    for rule, (tres, limit, gpu) in expected.items():
        job = by_rule.get(rule)
        if job is None:
            problems.append(f"no Slurm job seen for rule {rule}")
            continue
        problems += [f"{rule}: {part} not in TRES {job.get('TRES')}" for part in tres if part not in job.get("TRES", "")]
        if job.get("TimeLimit") != limit:
            problems.append(f"{rule}: TimeLimit {job.get('TimeLimit')} != {limit}")
        if gpus(job) != gpu:
            problems.append(f"{rule}: GPU request {gpus(job)}, rule wants {gpu} (TresPerJob {job.get('TresPerJob')})")
    return problems


def slurm_run(root: Path, reference_done: threading.Event) -> list[str] | None:
    """Run through the slurm profile with one preemption; None when Slurm is unavailable.

    The results are compared with the reference once ``reference_done`` is set.
    """
    state = root / "slurm-state"
    start = subprocess.run(["bash", str(HERE / "slurm_cluster.sh"), "start", str(state)],
                           capture_output=True, text=True)
    if start.returncode == 3:
        print(f"SKIP slurm: {start.stderr.strip()}")
        return None
    if start.returncode != 0:
        return [f"slurm did not start: {start.stdout}{start.stderr}"]
    print(start.stdout.strip())
    env = {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}
    work = root / "slurm"
    try:
        t0 = time.monotonic()
        run = Run(snakemake_cmd(work, "--profile", str(REPO / "workflow" / "profiles" / "slurm"),
                                "--slurm-status-command", "squeue",
                                "--slurm-init-seconds-before-status-checks", "2",
                                "--slurm-logdir", str(root / "slurm-logs"), "--latency-wait", "5",
                                # group jobs must fit the one node: 2 CPUs (slurm_cluster.sh: nproc) and
                                # 1 GPU (its GRES): 1-thread per-video jobs that ask for a GPU stack in series
                                "--cores", str(os.cpu_count()), "--resources", "mem_mb=16000", "gpu=1"),
                  root / "slurm.log", env=env)
        done, report = threading.Event(), {}
        watcher = threading.Thread(target=preempt, args=(work, env, done, report), daemon=True)
        watcher.start()
        code = run.wait()
        done.set()
        wall = time.monotonic() - t0
        if code != 0:
            return [f"slurm run failed; see {root / 'slurm.log'}"]
        jobs = slurm_jobs(env)
        print(f"slurm run: {wall:.0f} s wall (beside the local runs); {len(jobs)} Slurm jobs")
        problems = check_resources(jobs)
        if not report:
            problems.append(f"no {PREEMPTED_RULE} job was preempted")
        else:
            train_log = (work / RESULTS / "logs" / PREEMPTED_RULE / f"{report['run']}.log").read_text()
            resumed = re.search(r"resuming \w+ training from \S*ckpt_(\d+)", train_log)
            print(f"preempted Slurm job {report['job']} ({PREEMPTED_RULE} {report['run']}) after {report['checkpoint']};"
                  f" {'resumed from iteration ' + resumed.group(1) if resumed else 'no resume logged'}")
            if not resumed:
                problems.append(f"{PREEMPTED_RULE} {report['run']} did not resume from its checkpoint")
    finally:
        subprocess.run(["bash", str(HERE / "slurm_cluster.sh"), "stop", str(state)], capture_output=True)
    reference_done.wait()
    return problems + compare_results(root / "ref" / RESULTS, work / RESULTS)


def kubernetes_dry_run(root: Path) -> list[str]:
    """Dry run through workflow/profiles/kubernetes against a local S3 API (moto_server).

    The Kubernetes executor is not run here (no cluster); the dry run checks that the workflow
    resolves every path through the remote default storage the profile sets.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1"}
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3

        for _ in range(100):
            try:
                boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                             aws_secret_access_key="test").create_bucket(Bucket="wsvis")
                break
            except Exception:  # the server is still starting
                time.sleep(0.1)
        out = subprocess.run(snakemake_cmd(root / "k8s", "--profile", str(REPO / "workflow" / "profiles" / "kubernetes"),
                                           "--default-storage-prefix", "s3://wsvis/run",
                                           "--storage-s3-endpoint-url", endpoint, "-n", "--quiet", "rules"),
                             capture_output=True, text=True, env=env)
    finally:
        server.terminate()
        server.wait()
    total = re.search(r"^total\s+(\d+)$", out.stdout, re.M)
    if out.returncode != 0 or not total:
        return [f"kubernetes dry run failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"]
    print(f"kubernetes dry run: {total.group(1)} jobs planned through s3://wsvis/run")
    return []


def _interrupted(signum: int, frame) -> None:
    """SIGINT / SIGTERM (CI cancelled): kill every Snakemake run, each in its own session, so none
    outlives the tests; then exit through the ``finally`` blocks (the Slurm daemons are stopped)."""
    for pgid in list(Run.live):
        _kill_group(pgid)
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["faults", "slurm", "kubernetes"])
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="wsvis-cluster-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"cluster tests in {root}, seed {args.seed}")
    # The demo's runs (maskconsist, stcseg, boxinst_flow) use every rule; maskrcnn and boxinst add
    # jobs of the same rules only (tests/test_workflow.py runs them).
    config = tiny_workflow(root, every_method=False)
    # Enough iterations for a preemption between checkpoints of the segmenter training.
    # lr 0.002 (the paper's): the demo's 0.01 drives the 64-px Mask R-CNN to NaN within 12 iterations.
    config["segment"]["train"].update(iterations=12, checkpoint_every=2, base_lr=0.002)
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    failures: list[str] = []
    slurm: dict[str, list[str] | None] = {}
    reference_done = threading.Event()

    def slurm_part() -> None:
        try:
            slurm["problems"] = slurm_run(root, reference_done)
        except Exception as err:  # reported with the other failures, not lost in the thread
            slurm["problems"] = [f"slurm part raised {err!r}"]

    slurm_thread = threading.Thread(target=slurm_part, daemon=True)
    try:
        if args.only in (None, "kubernetes"):
            failures += kubernetes_dry_run(root)
        if args.only in (None, "slurm"):
            slurm_thread.start()
        if args.only != "kubernetes":
            try:
                local_wall, median, order = reference_run(root)
            finally:
                reference_done.set()
            print(f"reference local run: {local_wall:.0f} s wall, {len(order)} stages")
        if args.only in (None, "faults"):
            problems = fault_run(root, median, order, random.Random(args.seed))
            print(f"faults: {'passed' if not problems else 'FAILED'}")
            failures += problems
        if slurm_thread.ident is not None:  # started
            slurm_thread.join()
            if slurm["problems"] is not None:
                print(f"slurm: {'passed' if not slurm['problems'] else 'FAILED'}")
                failures += slurm["problems"]
    finally:
        if slurm_thread.ident is not None:
            slurm_thread.join()  # also after a failed reference run: the thread stops its Slurm daemons
        if not args.keep and not failures:
            shutil.rmtree(root, ignore_errors=True)
    for line in failures:
        print(f"  {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
