"""What share of byte-flipped index files does each reader silently accept?

One IVF-PQ index (siftsmall-like random data, trained by faiss) is
serialized; each trial flips one random byte (XOR with a random non-zero
value) and hands the damaged bytes to:

* faiss-cpu ``deserialize_index`` (in a child process, so a crash is counted
  rather than fatal),
* voisin ``deserialize_index`` on FAISS's bytes (no trailer: only structural
  checks can catch the damage),
* voisin ``deserialize_index`` on voisin's bytes (the same index + checksum trailer).

"Accepted" means the reader returned an index without an error. Usage:

    python benchmarks/io_flip_acceptance.py --trials 2000 --out benchmarks/results/io-flip-acceptance.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import voisin

FAISS_CHILD = textwrap.dedent("""
    import sys, numpy as np, faiss
    data = np.fromfile(sys.argv[1], dtype=np.uint8)
    flips = np.load(sys.argv[2])
    out = []
    for pos, val in flips:
        bad = data.copy()
        bad[pos] ^= val
        try:
            faiss.deserialize_index(bad)
            out.append(1)
        except Exception:
            out.append(0)
    np.save(sys.argv[3], np.array(out, dtype=np.int8))
""")


def build(seed: int = 0) -> bytes:
    import faiss
    rng = np.random.default_rng(seed)
    xb = rng.normal(size=(20000, 32)).astype(np.float32)
    quantizer = faiss.IndexFlatL2(32)
    index = faiss.IndexIVFPQ(quantizer, 32, 64, 8, 8)
    index.train(xb)
    index.add(xb)
    return bytes(faiss.serialize_index(index))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default="/tmp/voisin-io-bench")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)

    plain = build(args.seed)
    index = voisin.deserialize_index(plain)
    checked = voisin.serialize_index(index).tobytes()
    assert checked[:len(plain)] == plain, "voisin's payload must be FAISS's bytes"
    rng = np.random.default_rng(args.seed + 1)
    pos = rng.integers(0, len(plain), args.trials)
    val = rng.integers(1, 256, args.trials)
    flips = np.stack([pos, val], axis=1)

    (work / "plain.bin").write_bytes(plain)
    np.save(work / "flips.npy", flips)
    proc = subprocess.run([sys.executable, "-c", FAISS_CHILD, str(work / "plain.bin"),
                           str(work / "flips.npy"), str(work / "faiss_ok.npy")])
    if proc.returncode == 0:
        faiss_ok = np.load(work / "faiss_ok.npy")
        faiss_accepted, faiss_note = float(faiss_ok.mean()), "child exited normally"
    else:
        faiss_accepted, faiss_note = None, f"faiss child process died (returncode {proc.returncode})"

    def voisin_accepts(buf: bytes, p: int, v: int) -> bool:
        bad = bytearray(buf)
        bad[p] ^= v
        try:
            voisin.deserialize_index(bytes(bad))
            return True
        except voisin.IndexFileError:
            return False

    v_plain = np.array([voisin_accepts(plain, p, v) for p, v in flips])
    v_checked = np.array([voisin_accepts(checked, p, v) for p, v in flips])
    result = {
        "benchmark": "io-flip-acceptance",
        "index": "IVF64,PQ8 (faiss-trained), 20000 x 32 normal vectors",
        "file_bytes": {"faiss_layout": len(plain), "with_checksum_trailer": len(checked)},
        "trials": args.trials,
        "accepted_share": {
            "faiss_deserialize_index": faiss_accepted,
            "voisin_on_faiss_bytes_no_trailer": float(v_plain.mean()),
            "voisin_on_voisin_bytes_with_trailer": float(v_checked.mean()),
        },
        "faiss_note": faiss_note,
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "notes": "one random byte XOR random non-zero value per trial; 'accepted' = no error "
                 "raised. Most of an IVF-PQ file is PQ codes, centroids and ids, where any value "
                 "is structurally valid: only a checksum can reveal damage there.",
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
