"""leakscope bench workload: allocation churn in CPython (run with PYTHONMALLOC=malloc).

Deterministic: fixed seed, no I/O but one summary line on stdout. argv[1] = scale (float,
default 1.0) multiplies the number of rounds. Each round builds and discards dicts, lists,
strings, tuples and class instances of varied sizes, so nearly every object goes through
malloc/realloc/free when PYTHONMALLOC=malloc.
"""
import random
import sys


class Node:
    def __init__(self, key, value, children=None):
        self.key = key
        self.value = value
        self.children = children or []
        self.meta = {"k": key, "len": len(value)}


class Slotted:
    __slots__ = ("a", "b", "c")

    def __init__(self, a, b, c):
        self.a, self.b, self.c = a, b, c


def build_tree(rng, depth, width):
    if depth == 0:
        return Node(rng.randrange(1 << 20), "leaf" * rng.randrange(1, 8))
    kids = [build_tree(rng, depth - 1, width) for _ in range(width)]
    return Node(rng.randrange(1 << 20), "node-%d" % depth, kids)


def walk(node):
    total = len(node.value) + node.meta["len"]
    for c in node.children:
        total += walk(c)
    return total


def one_round(rng, r):
    acc = 0
    # dict churn: string keys, growing and shrinking
    d = {}
    for i in range(3000):
        k = "key-%d-%d" % (r, rng.randrange(100000))
        d[k] = [i, k.upper(), (i, i + 1)]
    for k in list(d)[::2]:
        del d[k]
    acc += len(d)
    # list churn with appends and slices
    lst = [rng.random() for _ in range(4000)]
    lst.sort()
    chunks = [lst[i:i + 37] for i in range(0, len(lst), 37)]
    acc += len(chunks)
    # string building
    parts = []
    for i in range(1500):
        parts.append("%08x:%s" % (rng.getrandbits(32), "ab" * (i % 13)))
    s = ",".join(parts)
    acc += len(s.split(","))
    acc += len(s.replace("ab", "xyz"))
    # class instances and a tree
    objs = [Slotted(i, str(i), {i: i}) for i in range(1500)]
    acc += sum(o.a for o in objs)
    acc += walk(build_tree(rng, 5, 4))
    # set / tuple / bytes churn
    st = {(i % 97, str(i % 89)) for i in range(3000)}
    acc += len(st)
    acc += len(b"".join(bytes([i % 256]) * (i % 50) for i in range(800)))
    return acc


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rounds = max(1, int(220 * scale))
    rng = random.Random(12345)
    total = 0
    keep = []
    for r in range(rounds):
        total += one_round(rng, r)
        if r % 10 == 0:  # a little long-lived state too
            keep.append({"r": r, "data": [str(x) for x in range(200)]})
    print("rounds=%d total=%d kept=%d" % (rounds, total, len(keep)))


if __name__ == "__main__":
    main()
