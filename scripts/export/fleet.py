"""What the export checks share: running shadowd, and a two-host fleet of demo databases exported
to one directory (host-b's stored with `storage.bodies: compressed`), and reading SQLite as the
export holds it."""
import atexit
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zlib


def connect(path):
    """SQLite with the sqlite3 shell's sqlar_uncompress, for bodies stored compressed."""
    db = sqlite3.connect(path)
    db.create_function("sqlar_uncompress", 2, lambda body, size: body if not size or len(body) == size else zlib.decompress(body))
    return db


def pairs_as_exported(db):
    """The pairs view as the export holds it, as a subquery, and its columns: bodies as sent
    (inflated where stored compressed), without the storage's *_zlib lengths."""
    names = [row[1] for row in db.execute("PRAGMA table_info(pairs)")]
    columns = [name for name in names if not name.endswith("_zlib")]
    select = ", ".join(f"sqlar_uncompress({c}, {c}_zlib) AS {c}" if f"{c}_zlib" in names else c for c in columns)
    return f"(SELECT {select} FROM pairs)", columns


class Fleet:
    def __init__(self, shadowd, requests=600):
        self.shadowd = shadowd
        self.work = tempfile.mkdtemp(prefix="shadowd-export-")
        atexit.register(shutil.rmtree, self.work, ignore_errors=True)
        self.databases = []
        for host in ("host-a", "host-b"):
            path = os.path.join(self.work, f"{host}.sqlite")
            # host-b stores its bodies compressed: the export must give them back as sent.
            bodies = "compressed" if host == "host-b" else "full"
            self.run("demo", "--db", path, "--requests", str(requests), "--bodies", bodies)
            self.databases.append((host, path))
        self.out = os.path.join(self.work, "export")
        self.export_arguments = ["export", "--out-dir", self.out]
        for host, path in self.databases:
            self.export_arguments += ["--db", f"{host}={path}"]
        print(self.run(*self.export_arguments).strip())

    def run(self, *arguments, ok=(0,)):
        result = subprocess.run([self.shadowd, *arguments], capture_output=True, text=True)
        if result.returncode not in ok:
            sys.exit(f"shadowd {' '.join(arguments)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def report_divergence(self, host_index=0):
        """The report's divergence figures for one host's database (exit 3: the demo's candidate
        is built to be rejected)."""
        import json

        report = json.loads(self.run("report", "--db", self.databases[host_index][1], "--format", "json", ok=(0, 3)))
        return report["routes"][0]["candidates"][0]["divergence"]


    def run_headline(self, path, execute):
        """Runs a headline .sql file through `execute` (statement -> rows), host-a's divergence
        query restricted to host-a; returns that row and a failure message when it differs from
        the report's divergence rate and Wilson interval (None when equal)."""
        statements = sql_statements(path)
        for statement in statements[:2]:
            execute(statement)
        row = tuple(execute(statements[2].replace("FROM pairs WHERE", "FROM pairs WHERE host = 'host-a' AND"))[0])
        for statement in statements[3:]:
            execute(statement)
        divergence = self.report_divergence()
        _, _, compared, diverged, rate, low, high = row
        same = (compared, diverged) == (divergence["compared"], divergence["diverged"]) and abs(rate - divergence["rate"]) <= 1e-4 \
            and abs(low - divergence["interval"][0]) <= 1e-4 and abs(high - divergence["interval"][1]) <= 1e-4
        return row, None if same else f"{path}: {row} != the report's {divergence}"


def sql_statements(path):
    """A .sql file's statements, comments dropped."""
    text = "\n".join(line for line in open(path).read().splitlines() if not line.strip().startswith("--"))
    return [statement for statement in text.split(";") if statement.strip()]
