"""The peer's Lambda package, zipped as Lambda takes it: handler.py alone (the Python runtime
provides boto3), and handler.py with boto3 and its dependencies vendored from this venv (what
pinning the SDK version, as AWS advises, ships). Prints sizes in bytes as JSON.
"""

import io
import json
import os
import sys
import zipfile
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))


def zipped(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, name in files:
            archive.write(path, name)
    return len(buffer.getvalue())


def distribution_files(name, seen):
    """Every installed file of `name` and of what it requires, recursively."""
    if name.lower() in seen:
        return []
    seen.add(name.lower())
    dist = metadata.distribution(name)
    files = []
    for file in dist.files or []:
        path = file.locate()
        if os.path.isfile(path) and "__pycache__" not in str(file) and not str(file).startswith(".."):
            files.append((str(path), str(file)))
    for requirement in dist.requires or []:
        if ";" in requirement and "extra ==" in requirement:
            continue
        dependency = requirement.split(";")[0].strip()
        for stop in "<>=!~[ (":
            dependency = dependency.split(stop)[0]
        files += distribution_files(dependency, seen)
    return files


def main():
    handler = [(os.path.join(HERE, "handler.py"), "handler.py")]
    vendored = handler + distribution_files("boto3", set())
    print(json.dumps({
        "handler_zip_bytes": zipped(handler),
        "vendored_zip_bytes": zipped(vendored),
        "vendored_unzipped_bytes": sum(os.path.getsize(p) for p, _ in vendored),
        "vendored_files": len(vendored),
        "python": sys.version.split()[0],
        "boto3": metadata.version("boto3"),
    }))


if __name__ == "__main__":
    main()
