#!/usr/bin/python3
"""Deterministic input generators for the leakscope benchmark (Python 3 stdlib only).

Each generator takes an output path and a scale (1.0 = the default size, tuned so the workload
runs ~2 s plain on a 2-core machine) and writes the same bytes for the same scale on every run
(fixed seeds, no time or environment dependence). run.py imports this module; it can also be run
by hand:  /usr/bin/python3 bench/gen_inputs.py OUTDIR [SCALE]
"""
import json
import os
import random
import sys

JQ_OBJECTS = 60000      # ~15 MB of JSON at scale 1
SQL_ORDERS = 120000     # ~21 MB of SQL at scale 1

CATS = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]

# The jq filter: every input object is parsed (objects, arrays, strings), projected into a new
# object, then grouped and reduced; everything is freed when jq exits.
JQ_FILTER = ('[.[] | {id, cat, total: ([.items[] | .qty*.price] | add), ntags: (.tags | length),'
             ' city: .addr.city}] | group_by(.cat) | map({cat: .[0].cat, n: length,'
             ' total: (map(.total) | add), ntags: (map(.ntags) | add)})')


def _write_atomic(path, chunks):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii", newline="\n") as f:
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def gen_json(path, scale=1.0):
    """A JSON array of records with nested objects/arrays (tens of MB at scale >= 1)."""
    n = max(100, int(JQ_OBJECTS * scale))
    rng = random.Random(7)

    def chunks():
        yield "[\n"
        for i in range(n):
            o = {"id": i, "name": "user%07d" % rng.randrange(10**7), "cat": rng.choice(CATS),
                 "score": round(rng.random() * 1000, 3), "active": rng.random() < 0.5,
                 "tags": ["t%d" % rng.randrange(500) for _ in range(rng.randrange(1, 6))],
                 "items": [{"sku": "s%05d" % rng.randrange(99999), "qty": rng.randrange(1, 10),
                            "price": round(rng.random() * 100, 2)}
                           for _ in range(rng.randrange(1, 5))],
                 "addr": {"city": "c%03d" % rng.randrange(1000),
                          "zip": "%05d" % rng.randrange(100000)}}
            yield json.dumps(o, separators=(",", ":"))
            yield ",\n" if i < n - 1 else "\n"
        yield "]\n"

    _write_atomic(path, chunks())
    return path


def gen_sql(path, scale=1.0):
    """A SQL script: bulk inserts in one transaction, indexes, joins, group by, update, delete,
    CREATE TABLE AS. Run with: sqlite3 -batch :memory: ".read PATH"."""
    n = max(100, int(SQL_ORDERS * scale))
    nc = max(10, n // 10)
    rng = random.Random(99)
    cities = ["c%03d" % i for i in range(300)]
    statuses = ["new", "paid", "shipped", "void"]

    def chunks():
        yield ("CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, city TEXT, since INTEGER);\n"
               "CREATE TABLE orders(id INTEGER PRIMARY KEY, cust INTEGER, day INTEGER, status TEXT,"
               " note TEXT);\n"
               "CREATE TABLE item(order_id INTEGER, sku TEXT, qty INTEGER, price REAL);\n"
               "BEGIN;\n")
        for i in range(1, nc + 1):
            yield "INSERT INTO customer VALUES(%d,'cust%07d','%s',%d);\n" % (
                i, rng.randrange(10**7), rng.choice(cities), rng.randrange(3650))
        for i in range(1, n + 1):
            yield "INSERT INTO orders VALUES(%d,%d,%d,'%s','%s');\n" % (
                i, rng.randrange(1, nc + 1), rng.randrange(3650), rng.choice(statuses),
                "x" * rng.randrange(0, 40))
            for _ in range(rng.randrange(1, 4)):
                yield "INSERT INTO item VALUES(%d,'s%05d',%d,%.2f);\n" % (
                    i, rng.randrange(20000), rng.randrange(1, 10), rng.random() * 100)
        yield "COMMIT;\n"
        yield ("CREATE INDEX orders_cust ON orders(cust);\n"
               "CREATE INDEX item_order ON item(order_id);\n"
               "CREATE INDEX item_sku ON item(sku, price);\n"
               "SELECT c.city, count(*), sum(i.qty*i.price) FROM customer c"
               " JOIN orders o ON o.cust=c.id JOIN item i ON i.order_id=o.id"
               " GROUP BY c.city ORDER BY 3 DESC LIMIT 5;\n"
               "SELECT o.status, count(DISTINCT o.cust), avg(i.price) FROM orders o"
               " JOIN item i ON i.order_id=o.id WHERE o.day BETWEEN 100 AND 3000 GROUP BY o.status;\n"
               "SELECT sku, count(*), max(price) FROM item GROUP BY sku HAVING count(*) > 12"
               " ORDER BY 2 DESC LIMIT 5;\n"
               "UPDATE orders SET note = note || upper(status) WHERE day % 7 = 0;\n"
               "DELETE FROM item WHERE qty = 1;\n"
               "SELECT c.name, group_concat(o.status) FROM customer c JOIN orders o ON o.cust=c.id"
               " WHERE c.id % 500 = 0 GROUP BY c.id LIMIT 3;\n"
               "CREATE TABLE summary AS SELECT cust, count(*) AS n, sum(day) AS s FROM orders"
               " GROUP BY cust;\n"
               "SELECT count(*), sum(n), max(s) FROM summary;\n")

    _write_atomic(path, chunks())
    return path


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: gen_inputs.py OUTDIR [SCALE]")
    out = sys.argv[1]
    sc = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    os.makedirs(out, exist_ok=True)
    print(gen_json(os.path.join(out, "jq-input.json"), sc))
    print(gen_sql(os.path.join(out, "sqlite-script.sql"), sc))
