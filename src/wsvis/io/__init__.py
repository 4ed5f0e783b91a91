"""Dataset readers, the manifest and ground truth, and the Zarr artifact store."""
