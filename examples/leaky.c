/*
 * leaky.c - the bundled example for `leakscope run`: a small program with one leak of each kind.
 *
 *   definitely lost: a node list whose head pointer is dropped (the head is definitely lost,
 *                    the rest of the list indirectly lost), and a forgotten strdup;
 *   possibly lost:   a block only reachable through a pointer into its middle;
 *   still reachable: a table kept in a global.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct node *next;
    char payload[24];
};

static void *registry;      /* still reachable */
static char *cursor;        /* points into the middle of a block: possibly lost */

static __attribute__((noinline)) struct node *make_list(int n)
{
    struct node *head = NULL;
    for (int i = 0; i < n; i++) {
        struct node *nd = malloc(sizeof(*nd));
        nd->next = head;
        snprintf(nd->payload, sizeof(nd->payload), "node %d", i);
        head = nd;
    }
    return head;
}

static __attribute__((noinline)) void lose_list(void)
{
    struct node *l = make_list(4);
    printf("built a list starting at '%s'\n", l->payload);
    /* l goes out of scope: 1 block definitely lost, 3 indirectly */
}

static __attribute__((noinline)) void forget_copy(const char *s)
{
    char *copy = strdup(s);
    printf("copied '%s'\n", copy);
}

int main(void)
{
    registry = calloc(16, sizeof(void *));
    char *buf = malloc(64);
    cursor = buf + 32;
    buf = NULL;
    lose_list();
    forget_copy("hello, leakscope");
    return 0;
}
