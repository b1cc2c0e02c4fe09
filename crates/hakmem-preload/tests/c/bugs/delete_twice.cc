/* delete of the same object twice in a row: the report names operator delete. */
#include "bug.h"
struct Node {
    long v[5];
};
int main(int argc, char **argv) {
    bug_init(argc, argv);
    Node *n = new Node;
    memset(n, 1, sizeof *n);
    sink(n);
    delete n;
    if (!ok_mode) {
        expect_addr(n);
        delete n;
    }
    return bug_end();
}
