"""A dict/list/json-heavy python3 workload for `hakmem-bench compare` (prints a checksum)."""
import json

total = 0
for r in range(3):
    d = {str(i): {"a": [i] * 5, "b": str(i) * 2} for i in range(100000)}
    s = json.dumps(d)
    total += len(s) + len(json.loads(s))
    words = sorted([str(x) * 3 for x in range(200000)], reverse=True)
    total += sum(len(w) for w in words)
    del d, s, words
print(total)
