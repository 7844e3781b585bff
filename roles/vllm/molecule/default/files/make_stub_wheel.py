"""Write a wheel named `vllm` that only answers `vllm --version` (molecule test double).

Real vLLM is several GB with torch and CUDA; the role's venv, pin, --require-hashes and
wheelhouse path are exercised with this instead. Deterministic: same bytes every run.
Usage: python3 make_stub_wheel.py OUTDIR
"""
import base64
import hashlib
import sys
import zipfile
from pathlib import Path

VERSION = "0.0.0+gpuforgestub"
DIST = f"vllm-{VERSION}.dist-info"
FILES = {
    "vllm/__init__.py": f'__version__ = "{VERSION}"\n',
    "vllm/cli.py": (
        "import sys\n\nfrom vllm import __version__\n\n\n"
        "def main():\n"
        "    if sys.argv[1:] == ['--version']:\n"
        "        print(__version__)\n"
        "        return 0\n"
        "    sys.exit('gpuforge test double: this vllm cannot serve')\n"
    ),
    f"{DIST}/METADATA": f"Metadata-Version: 2.1\nName: vllm\nVersion: {VERSION}\n",
    f"{DIST}/WHEEL": (
        "Wheel-Version: 1.0\nGenerator: gpuforge\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    f"{DIST}/entry_points.txt": "[console_scripts]\nvllm = vllm.cli:main\n",
}


def main() -> None:
    out = Path(sys.argv[1]) / f"vllm-{VERSION}-py3-none-any.whl"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as whl:
        for name, text in FILES.items():
            data = text.encode()
            whl.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append(f"{DIST}/RECORD,,")
        whl.writestr(zipfile.ZipInfo(f"{DIST}/RECORD", (1980, 1, 1, 0, 0, 0)),
                     "\n".join(record) + "\n")
    print(out)


if __name__ == "__main__":
    main()
