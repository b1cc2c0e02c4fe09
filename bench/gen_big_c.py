"""Writes a large C file for `hakmem-bench compare -- gcc -O1 -c FILE` (docs/PERFORMANCE.md, Real
programs): N functions, each a struct, a looping helper with a switch and an snprintf, and a caller.

Usage: python3 bench/gen_big_c.py N OUT.c   (N = 1000 gives ~17,000 lines, N = 3000 ~51,000)
"""
import random
import sys

n, out = int(sys.argv[1]), sys.argv[2]
random.seed(1)
parts = ["#include <stdio.h>\n#include <string.h>\n"]
for i in range(n):
    a = random.randint(1, 100)
    parts.append(f"""
struct s{i} {{ int a[{a%16+1}]; double d; char name[{a%32+8}]; }};
static int helper{i}(struct s{i} *p, int n) {{
    int acc = {a};
    for (int k = 0; k < n; k++) {{
        acc += p->a[k % {a%16+1}] * {a} + (int)(p->d * k);
        if (acc & 1) acc ^= {i}; else acc += k * {a%7+1};
        switch (acc % 5) {{ case 0: acc += 3; break; case 1: acc -= 7; break; case 2: acc *= 3; break; default: acc ^= 0x55; }}
    }}
    snprintf(p->name, sizeof p->name, "f%d", acc);
    return acc + (int)strlen(p->name);
}}
int func{i}(int x) {{
    struct s{i} v; memset(&v, 0, sizeof v); v.d = x * 0.5;
    for (int j = 0; j < {a%16+1}; j++) v.a[j] = x + j * {a};
    return helper{i}(&v, x % 17) + (x > {a} ? func{max(i-1,0)}(x - 1) : 0);
}}
""")
with open(out, "w") as f:
    f.write("".join(parts))
