/* One process holds N loopback TCP connections, both ends, as io_uring direct descriptors
   (fixed-file slots of a ring), outside its file descriptor table, and moves a byte each way
   on every one. Built and run by `python -m bench fd-table` (bench/fd_table.py); prints key=value lines. */
#include <liburing.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define BATCH 256

static int fds_in_table(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

static void fail(const char *what, int err) {
    fprintf(stderr, "%s: %s\n", what, strerror(err));
    exit(1);
}

/* Submits what is queued and waits for `want` completions; returns how many failed. */
static int reap(struct io_uring *ring, int want, const char *what) {
    struct io_uring_cqe *cqe;
    int failed = 0, err;
    io_uring_submit(ring);
    for (int i = 0; i < want; i++) {
        if ((err = io_uring_wait_cqe(ring, &cqe)))
            fail("io_uring_wait_cqe", -err);
        if (cqe->res < 0 && failed++ < 3)
            fprintf(stderr, "%s: %s\n", what, strerror(-cqe->res));
        io_uring_cqe_seen(ring, cqe);
    }
    return failed;
}

static void fixed(struct io_uring_sqe *sqe) { sqe->flags |= IOSQE_FIXED_FILE; }

/* One byte from each of `from`'s slots [base, base+k) to the same slots of `to`. */
static int one_way(struct io_uring *from, struct io_uring *to, int base, int k) {
    static char byte = 'x', sink[BATCH];
    for (int i = 0; i < k; i++) {
        struct io_uring_sqe *send = io_uring_get_sqe(from), *recv = io_uring_get_sqe(to);
        io_uring_prep_send(send, base + i, &byte, 1, 0);
        io_uring_prep_recv(recv, base + i, &sink[i], 1, 0);
        fixed(send);
        fixed(recv);
    }
    return reap(from, k, "send") + reap(to, k, "recv");
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20000, failed = 0, err;
    struct rlimit limit;
    struct io_uring client, server;
    getrlimit(RLIMIT_NOFILE, &limit);
    printf("rlimit_nofile_soft=%lu\nrlimit_nofile_hard=%lu\nwanted=%d\n",
           (unsigned long)limit.rlim_cur, (unsigned long)limit.rlim_max, n);
    if ((err = io_uring_queue_init(2 * BATCH, &client, 0)) ||
        (err = io_uring_queue_init(2 * BATCH, &server, 0)))
        fail("io_uring_queue_init", -err);
    /* A ring's fixed-file table may be as large as RLIMIT_NOFILE, one per ring. */
    if ((err = io_uring_register_files_sparse(&client, n)) ||
        (err = io_uring_register_files_sparse(&server, n)))
        fail("io_uring_register_files_sparse", -err);

    int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (void *)&addr, sizeof addr) || listen(listener, 4096) ||
        getsockname(listener, (void *)&addr, &len))
        fail("listen", errno);

    for (int base = 0; base < n; base += BATCH) {
        int k = n - base < BATCH ? n - base : BATCH;
        for (int i = 0; i < k; i++)
            io_uring_prep_socket_direct(io_uring_get_sqe(&client), AF_INET, SOCK_STREAM, 0,
                                        base + i, 0);
        failed += reap(&client, k, "socket");
        for (int i = 0; i < k; i++) {
            struct io_uring_sqe *connect = io_uring_get_sqe(&client);
            io_uring_prep_connect(connect, base + i, (void *)&addr, sizeof addr);
            fixed(connect);
            io_uring_prep_accept_direct(io_uring_get_sqe(&server), listener, NULL, NULL, 0,
                                        base + i);
        }
        failed += reap(&client, k, "connect") + reap(&server, k, "accept");
    }
    printf("connected_pairs=%d\nfds_in_table_connected=%d\n", n, fds_in_table());

    for (int base = 0; base < n; base += BATCH) {
        int k = n - base < BATCH ? n - base : BATCH;
        failed += one_way(&client, &server, base, k) + one_way(&server, &client, base, k);
    }
    printf("round_trips=%d\nfailures=%d\nfds_in_table_end=%d\n", n, failed, fds_in_table());
    return failed != 0;
}
