# Run by ansible.builtin.command as `python3 -c <this file>` (tasks/download.yml), its
# settings as JSON on standard input, so the token is on no command line.
"""Download one URL into a new private file at no more than a given rate.

Settings on stdin: {"url", "dest", "rate" (bytes/s, > 0), "timeout" (s), "token"}. The
body is read in small chunks and paced so that, at any moment, no more than `rate` bytes
per second since the start have been read (no opening burst). `dest` is created 0600 and
holds the body as received; the caller checks its sha256 before using it. A redirect to
another host does not carry the Authorization header. Prints {"bytes", "seconds"}.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class _Redirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and (urllib.parse.urlsplit(newurl).netloc
                                != urllib.parse.urlsplit(req.full_url).netloc):
            new.remove_header("Authorization")
        return new


def main() -> int:
    settings = json.load(sys.stdin)
    rate = int(settings["rate"])
    request = urllib.request.Request(settings["url"],
                                     headers={"User-Agent": "gpuforge-model-store"})
    if settings.get("token"):
        request.add_header("Authorization", "Bearer " + settings["token"])
    chunk = max(1024, min(1 << 20, rate // 8))
    start = time.monotonic()
    done = 0
    try:
        opener = urllib.request.build_opener(_Redirect)
        with opener.open(request, timeout=float(settings["timeout"])) as response:
            fd = os.open(settings["dest"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                while True:
                    data = response.read(chunk)
                    if not data:
                        break
                    out.write(data)
                    done += len(data)
                    ahead = done / rate - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        sys.stderr.write(f"download of {settings['url']} failed: {exc}\n")
        return 1
    print(json.dumps({"bytes": done, "seconds": round(time.monotonic() - start, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
