#!/usr/bin/python3
"""Add the nvidia runtime to a containerd config.toml, keeping everything else.

Usage: merge-containerd-nvidia CONFIG RUNTIME_PATH [--check]
Prints "changed: ..." when the file was (or, with --check, would be) rewritten, else
"unchanged". Config version 3 (containerd 2.x) and 2 (1.x) are both handled.
"""
import os
import sys
import tempfile

import tomlkit

CRI = {3: ("io.containerd.cri.v1.runtime",), 2: ("io.containerd.grpc.v1.cri",)}


def main(argv):
    path, runtime_path = argv[1], argv[2]
    check = "--check" in argv[3:]
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else "version = 2\n"
    doc = tomlkit.parse(text)
    version = int(doc.get("version", 2))
    plugins = doc.setdefault("plugins", tomlkit.table(is_super_table=True))
    cri = plugins.setdefault(CRI.get(version, CRI[2])[0], tomlkit.table(is_super_table=True))
    runtimes = cri.setdefault("containerd", tomlkit.table(is_super_table=True)).setdefault(
        "runtimes", tomlkit.table(is_super_table=True))
    runc_options = dict(runtimes.get("runc", {}).get("options", {}))
    wanted_options = {**runc_options, "BinaryName": runtime_path}
    current = runtimes.get("nvidia")
    if (current is not None and current.get("runtime_type") == "io.containerd.runc.v2"
            and dict(current.get("options", {})) == wanted_options):
        print("unchanged")
        return 0
    nvidia = tomlkit.table()
    nvidia["runtime_type"] = "io.containerd.runc.v2"
    options = tomlkit.table()
    for key, value in wanted_options.items():
        options[key] = value
    nvidia["options"] = options
    runtimes["nvidia"] = nvidia
    if not check:
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".config.toml.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(tomlkit.dumps(doc))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    print(f"changed: nvidia runtime added to {path} (config version {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
