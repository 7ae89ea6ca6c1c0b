"""``python -m voisin.bench ...``: the same command as ``voisin bench``."""

from .command import bench

if __name__ == "__main__":
    bench(prog_name="python -m voisin.bench")
