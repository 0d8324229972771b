/*
 * list_lost: a singly linked list whose head pointer is lost. valgrind: the head is definitely
 * lost, every other node is indirectly lost (it is only reachable from the lost head). A second
 * list stays reachable from a global.
 *
 * Nodes are 24 bytes (next + two longs), the lost list has 5 nodes: 24/1 definite, 96/4 indirect.
 * The kept list has 3 nodes: 72/3 still reachable.
 */
// EXPECT definitely_lost=24/1 indirectly_lost=96/4 possibly_lost=0/0 still_reachable=72/3
// EXPECT_FUNC make_node definitely_lost=24/1
// EXPECT_FUNC make_node indirectly_lost=96/4
// EXPECT_FUNC build_list
#include <stdlib.h>

#include "lt.h"

struct node {
    struct node *next;
    long payload[2];
};

struct node *g_kept_list;

static LT_NOINLINE struct node *make_node(struct node *next, long v)
{
    struct node *n = malloc(sizeof *n);
    n->next = next;
    n->payload[0] = v;
    n->payload[1] = ~v;
    return n;
}

static LT_NOINLINE struct node *build_list(int count)
{
    struct node *head = NULL;
    for (int i = 0; i < count; i++) head = make_node(head, i);
    return head;
}

static LT_NOINLINE void run(void)
{
    lt_escape(build_list(5)); /* the head is dropped: only rax held it */
    g_kept_list = build_list(3);
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
