"""Fetch the pinned python3.11-doc Debian package and extract the pydoc corpus subset.

    python3 bench/data/pydoc/fetch.py [--dest var/corpora/pydoc] [--deb FILE.deb]
    python3 bench/data/pydoc/fetch.py --write-checksums   # after changing the pin

1. `apt-get download python3.11-doc=<PIN>` into a temporary folder (`apt-get update`
   first when the mirror does not list that version), or use `--deb` (a .deb you fetched
   yourself, e.g. from snapshot.debian.org).
2. Checks the package's version and SHA-256 against the pin below.
3. Unpacks it (`dpkg-deb -x`) and copies the pages listed in `files.sha256` (each checked)
   into DEST, flattened: `library/functions.html` becomes `library_functions.html`.
   The product keeps only a file's base name as its source name, and the subset has
   base names twice (`howto/logging.html`, `library/logging.html`), so the folder goes
   into the name; the qrels name pages by these flat names.

Only the page list, the checksums and this script are committed; DEST is not.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "python3.11-doc"
# Debian 12 (bookworm) main. A point release replaces it; see `_pin_help`.
VERSION = "3.11.2-6+deb12u8"
DEB_SHA256 = "50eb63e7f636c4281e9ce1b8f10386f1def42159eddce34fc1f41c46261df71b"
HTML_ROOT = Path("usr/share/doc/python3.11/html")
# The reference a user reads (library, language reference) and the prose that answers
# "how do I" questions (tutorial, HOWTOs, FAQ): 374 pages. Left out: the C API, distutils,
# extending/embedding and What's New (changelogs), which few questions are about, and the
# generated index pages.
SUBSET = ("library", "tutorial", "howto", "reference", "faq")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
CHECKSUMS = HERE / "files.sha256"
DEFAULT_DEST = ROOT / "var" / "corpora" / "pydoc"


class FetchError(Exception):
    """Something the user has to act on; the message says what."""


def flat_name(relative: str) -> str:
    """`library/functions.html` -> `library_functions.html` (the folders have no `_`)."""
    return relative.replace("/", "_")


def _pin_help() -> str:
    return (
        f"To move the pin: `apt-cache policy {PACKAGE}` shows the versions on offer; set "
        f"VERSION and DEB_SHA256 (`sha256sum` of the .deb) in {Path(__file__).name}, run it "
        "with --write-checksums, then re-check the qrels (pages may have changed) and say so "
        "in bench/data/pydoc/README.md. Or keep the pin: download "
        f"{PACKAGE}_{VERSION}_all.deb from https://snapshot.debian.org/package/python3.11/"
        f"{VERSION.replace('+', '%2B')}/ and pass it with --deb."
    )


def _run(command: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def _offered_versions() -> list[str]:
    policy = _run(["apt-cache", "madison", PACKAGE])
    return [line.split("|")[1].strip() for line in policy.stdout.splitlines() if "|" in line]


def download(folder: Path) -> Path:
    """The pinned .deb, downloaded into `folder` with apt."""
    if shutil.which("apt-get") is None:
        raise FetchError(f"apt-get not found: get the .deb yourself, pass --deb. {_pin_help()}")
    offered = _offered_versions()
    if VERSION not in offered:
        print(f"{PACKAGE} {VERSION} not in the apt lists; updating them", flush=True)
        update = _run(["apt-get", "update"])
        if update.returncode != 0:
            print(update.stderr.strip(), file=sys.stderr)
        offered = _offered_versions()
    if VERSION not in offered:
        raise FetchError(
            f"the mirror offers {PACKAGE} {', '.join(offered) or 'in no version'}, not the "
            f"pinned {VERSION}. {_pin_help()}"
        )
    result = _run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=folder)
    debs = sorted(folder.glob(f"{PACKAGE}_*.deb"))
    if result.returncode != 0 or not debs:
        raise FetchError(f"apt-get download failed: {result.stderr.strip()}")
    return debs[0]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_deb(deb: Path) -> None:
    output = _run(["dpkg-deb", "--field", str(deb), "Package", "Version"]).stdout
    fields = dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)
    found = (fields.get("Package"), fields.get("Version"))
    if found != (PACKAGE, VERSION):
        raise FetchError(
            f"{deb.name} is {found[0]} {found[1]}, not {PACKAGE} {VERSION}. {_pin_help()}"
        )
    actual = sha256_file(deb)
    if actual != DEB_SHA256:
        raise FetchError(
            f"{deb.name} has SHA-256 {actual}, the pin says {DEB_SHA256}: a rebuilt or "
            f"damaged package. {_pin_help()}"
        )
    print(f"{deb.name}: {PACKAGE} {VERSION}, SHA-256 as pinned", flush=True)


def read_checksums(path: Path = CHECKSUMS) -> dict[str, str]:
    """Relative page path -> SHA-256, from a `sha256sum`-format file."""
    pages: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, relative = line.partition("  ")
        if len(digest) != 64 or not relative:
            raise FetchError(f"{path}:{number}: expected `<sha256>  <path>`")
        pages[relative] = digest
    return pages


def subset_pages(html: Path) -> list[str]:
    return sorted(
        str(page.relative_to(html)) for folder in SUBSET for page in (html / folder).glob("*.html")
    )


def unpack(deb: Path, folder: Path) -> Path:
    result = _run(["dpkg-deb", "-x", str(deb), str(folder)])
    if result.returncode != 0:
        raise FetchError(f"dpkg-deb -x failed: {result.stderr.strip()}")
    return folder / HTML_ROOT


def copy_pages(html: Path, dest: Path, pages: dict[str, str]) -> None:
    bad = [
        rel
        for rel, digest in pages.items()
        if not (html / rel).is_file() or sha256_file(html / rel) != digest
    ]
    if bad:
        raise FetchError(
            f"{len(bad)} page(s) missing or not matching files.sha256, e.g. {bad[0]}. {_pin_help()}"
        )
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.html"):
        old.unlink()
    for relative in pages:
        shutil.copyfile(html / relative, dest / flat_name(relative))
    print(f"{len(pages)} pages checked and copied into {dest}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    parser.add_argument("--deb", type=Path, help="Use this .deb instead of apt-get download.")
    parser.add_argument(
        "--write-checksums",
        action="store_true",
        help="Rewrite files.sha256 from the package's subset (after moving the pin).",
    )
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="pydoc-") as tmp:
            folder = Path(tmp)
            deb = args.deb if args.deb else download(folder)
            check_deb(deb)
            html = unpack(deb, folder / "root")
            if args.write_checksums:
                lines = [f"{sha256_file(html / rel)}  {rel}" for rel in subset_pages(html)]
                CHECKSUMS.write_text("\n".join(lines) + "\n", encoding="utf-8")
                print(f"wrote {len(lines)} checksums to {CHECKSUMS}")
            copy_pages(html, args.dest, read_checksums())
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
