"""Record what OpenSSH resolves for each file in tests/fixtures/ssh_configs (``ssh -G``).

Run by hand (needs the OpenSSH client); the tests only read the recorded JSON:

    python3 tests/tools/record_ssh_configs.py

For every literal ``Host`` name in a file, plus ``example.org``, ``ssh -G -F FILE HOST`` is
run with HOME pointing at an empty folder (so ``Include config.d/*`` and ``~`` mean the
same thing everywhere) and the values Baton uses are kept: hostname, port, user,
identityfile, proxyjump, proxycommand, forwardagent. A file OpenSSH refuses for an option
it does not know (``UseKeychain``, macOS only) is recorded again with ``-o IgnoreUnknown=``
that option, as the file's owner would write on Linux, and the option is noted.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "ssh_configs"
HOME = "/nonexistent-baton-home"
KEYS = ("hostname", "port", "user", "identityfile", "proxyjump", "proxycommand", "forwardagent")


def hosts_of(text: str) -> list[str]:
    names: list[str] = []
    for line in text.splitlines():
        words = re.split(r"[\s=]+", line.split("#", 1)[0].strip())
        if words and words[0].lower() == "host":
            names += [w for w in words[1:] if w and not set(w) & set("*?!") and w not in names]
    return [*names, "example.org"]


def resolve(path: Path, host: str, extra: list[str]) -> tuple[int, str, str]:
    env = {**os.environ, "HOME": HOME}
    done = subprocess.run(["ssh", "-G", *extra, "-F", str(path), host], capture_output=True,
                          text=True, env=env, check=False, stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout, done.stderr


def main() -> int:
    out = HERE / "expected"
    out.mkdir(exist_ok=True)
    version = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    for path in sorted(HERE.iterdir()):
        if not path.is_file() or path.suffix == ".md":
            continue
        ignored: list[str] = []
        record: dict[str, object] = {"openssh": version, "home": HOME, "hosts": {}}
        for host in hosts_of(path.read_text()):
            extra = [f"-oIgnoreUnknown={','.join(ignored)}"] if ignored else []
            code, stdout, stderr = resolve(path, host, extra)
            bad = re.findall(r"Bad configuration option: (\w+)", stderr)
            if code and bad:
                ignored += [b for b in bad if b not in ignored]
                code, stdout, stderr = resolve(path, host,
                                               [f"-oIgnoreUnknown={','.join(ignored)}"])
            if code:
                raise SystemExit(f"{path.name} {host}: {stderr.strip()}")
            values: dict[str, list[str]] = {}
            for line in stdout.splitlines():
                key, _, value = line.partition(" ")
                if key in KEYS:
                    if key == "user" and value == getpass.getuser():
                        value = "%u"  # the local user, whoever runs the tests
                    values.setdefault(key, []).append(value)
            record["hosts"][host] = values  # type: ignore[index]
        record["ignore_unknown"] = ignored
        (out / f"{path.name}.json").write_text(json.dumps(record, indent=1, sort_keys=True)
                                               + "\n")
        print(path.name, len(record["hosts"]), "hosts", ignored or "")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
