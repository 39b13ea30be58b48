/*
 * paced: an open-loop HTTP load generator for bench/run's paced mode.
 *
 * Sends the view events of a file at a fixed rate, each at its scheduled
 * time whatever the server answers (no waiting for answers: a connection
 * with a request in flight gets the next one pipelined behind it when all
 * connections are busy), and records when each answer arrived. Latency is
 * measured from the request's scheduled time, so a server that falls
 * behind shows it (no coordinated omission). The harness compiles this
 * file with the system's cc at run time (bench/node/harness.js).
 *
 *   paced --port P --path /engagement/view --bodies FILE --rate R
 *         --duration S [--connections N] [--drain S]
 *
 * FILE: one event a line, "<kind><unique>\t<body>", as bench/wrk/fixed.lua
 * writes it with BENCH_FIXED_MARK=1: kind n (new), r (exact retry),
 * p (progress repeat) or m (malformed); unique 1 when the event is the
 * first valid one of its (content, viewer). The first rate x duration
 * events are sent (fewer if the file is shorter).
 *
 * Prints one line: BENCH {json} (what was sent and answered, the truth,
 * the achieved rate, latency percentiles).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS  1024
#define IN_SIZE    (256 * 1024)

typedef struct {
    int        fd;
    char      *out;
    size_t     out_len, out_off, out_cap;
    uint32_t  *q;            /* request indexes in flight, in order */
    size_t     q_head, q_len, q_cap;
    char      *in;
    size_t     in_len;
    int        want_write;
} conn_t;

static struct {
    int         port, conns, epfd;
    const char *path, *file;
    double      rate, duration, drain;
    char      **req;         /* the whole request of each event */
    size_t     *req_len;
    char       *kind, *uniq;
    size_t      n;
    int64_t    *lat_us;      /* per request: -1 not answered yet */
    conn_t      c[MAX_CONNS];
    uint64_t    sent, answered, lost, reconnects, views_answered;
    uint64_t    status[6];   /* 1xx..5xx, [0] other */
    uint64_t    s200, s202, s204, s400;
    double      t0, send_end, max_lag, last_answer;
} P;

static double
now_s(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *msg)
{
    fprintf(stderr, "paced: %s (%s)\n", msg, strerror(errno));
    exit(1);
}

static void
load_bodies(void)
{
    FILE     *f;
    char     *line = NULL, *body;
    size_t    cap = 0, want, blen, hl;
    ssize_t   len;
    char      head[512];

    f = fopen(P.file, "r");
    if (f == NULL) {
        die("cannot open the bodies file");
    }
    want = (size_t) (P.rate * P.duration + 0.5);
    P.req = calloc(want + 1, sizeof(char *));
    P.req_len = calloc(want + 1, sizeof(size_t));
    P.kind = calloc(want + 1, 1);
    P.uniq = calloc(want + 1, 1);
    while (P.n < want && (len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n') {
            line[--len] = '\0';
        }
        if (len < 3 || line[2] != '\t') {
            continue;
        }
        body = line + 3;
        blen = len - 3;
        hl = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n", P.path, P.port, blen);
        P.req[P.n] = malloc(hl + blen);
        memcpy(P.req[P.n], head, hl);
        memcpy(P.req[P.n] + hl, body, blen);
        P.req_len[P.n] = hl + blen;
        P.kind[P.n] = line[0];
        P.uniq[P.n] = line[1] == '1';
        P.n++;
    }
    free(line);
    fclose(f);
    P.lat_us = malloc((P.n + 1) * sizeof(int64_t));
    for (size_t i = 0; i < P.n; i++) {
        P.lat_us[i] = -1;
    }
}

static void
conn_open(conn_t *c)
{
    struct sockaddr_in   sa;
    struct epoll_event   ev;
    int                  one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) {
        die("socket");
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(P.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        die("connect");
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fcntl(c->fd, F_SETFL, O_NONBLOCK) != 0) {
        die("O_NONBLOCK");
    }
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(P.epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        die("epoll_ctl");
    }
    c->want_write = 0;
    c->in_len = 0;
    c->out_len = c->out_off = 0;
}

/* the connection broke: what was in flight on it is lost; a new one */
static void
conn_reset(conn_t *c)
{
    epoll_ctl(P.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    P.lost += c->q_len;
    c->q_len = 0;
    c->q_head = 0;
    P.reconnects++;
    conn_open(c);
}

static void
conn_want_write(conn_t *c, int on)
{
    struct epoll_event  ev;

    if (c->want_write == on) {
        return;
    }
    c->want_write = on;
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(P.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
conn_flush(conn_t *c)
{
    ssize_t  n;

    while (c->out_off < c->out_len) {
        n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            conn_want_write(c, 1);
            return;
        }
        if (n <= 0) {
            conn_reset(c);
            return;
        }
        c->out_off += n;
    }
    c->out_len = c->out_off = 0;
    conn_want_write(c, 0);
}

/* queue request i on the least busy connection (an idle one if any) */
static conn_t *
dispatch(size_t i)
{
    static int   rr;
    conn_t      *c, *best = NULL;
    int          k;

    for (k = 0; k < P.conns; k++) {
        c = &P.c[(rr + k) % P.conns];
        if (best == NULL || c->q_len < best->q_len) {
            best = c;
            if (c->q_len == 0) {
                break;
            }
        }
    }
    rr = (rr + 1) % P.conns;
    c = best;
    if (c->out_len + P.req_len[i] > c->out_cap) {
        c->out_cap = (c->out_len + P.req_len[i]) * 2;
        c->out = realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, P.req[i], P.req_len[i]);
    c->out_len += P.req_len[i];
    if (c->q_len == c->q_cap) {
        size_t     cap = c->q_cap ? c->q_cap * 2 : 64, j;
        uint32_t  *q = malloc(cap * sizeof(uint32_t));

        for (j = 0; j < c->q_len; j++) {
            q[j] = c->q[(c->q_head + j) % c->q_cap];
        }
        free(c->q);
        c->q = q;
        c->q_cap = cap;
        c->q_head = 0;
    }
    c->q[(c->q_head + c->q_len) % c->q_cap] = (uint32_t) i;
    c->q_len++;
    P.sent++;
    return c;
}

/* the length of the chunked body at p (n bytes), or 0 if incomplete */
static size_t
chunked_len(const char *p, size_t n)
{
    size_t       off = 0, sz;
    const char  *e;
    char        *end;

    for ( ;; ) {
        e = memmem(p + off, n - off, "\r\n", 2);
        if (e == NULL) {
            return 0;
        }
        sz = strtoul(p + off, &end, 16);
        off = (e - p) + 2;
        if (sz == 0) {
            /* no trailers here: the last chunk is followed by CRLF */
            return n - off >= 2 ? off + 2 : 0;
        }
        if (n - off < sz + 2) {
            return 0;
        }
        off += sz + 2;
    }
}

static void
answered(conn_t *c, int status, const char *body, size_t blen, double t)
{
    uint32_t  i;

    if (c->q_len == 0) {
        return;
    }
    i = c->q[c->q_head];
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
    P.lat_us[i] = (int64_t) ((t - (P.t0 + i / P.rate)) * 1e6);
    P.last_answer = t;
    P.answered++;
    P.status[status >= 100 && status < 600 ? status / 100 : 0]++;
    P.s200 += status == 200;
    P.s204 += status == 204;
    P.s400 += status == 400;
    if (status == 202) {
        P.s202++;
        /* a counted view: the module says "view" in its metrics; the
         * other systems' 202 is a counted view */
        if (memmem(body, blen, "\"view\"", 6) != NULL
            || memmem(body, blen, "\"metrics\"", 9) == NULL)
        {
            P.views_answered++;
        }
    }
}

/* parse every whole answer in c->in */
static int
parse(conn_t *c, double t)
{
    char        *p, *h, *cl, *te;
    size_t       hlen, blen, total;
    int          status;

    for ( ;; ) {
        p = c->in;
        h = memmem(p, c->in_len, "\r\n\r\n", 4);
        if (h == NULL) {
            return c->in_len < IN_SIZE ? 0 : -1;
        }
        hlen = h - p + 4;
        if (c->in_len < 12 || strncmp(p, "HTTP/1.", 7) != 0) {
            return -1;
        }
        status = atoi(p + 9);
        *h = '\0';
        cl = strcasestr(p, "\r\ncontent-length:");
        te = strcasestr(p, "\r\ntransfer-encoding: chunked");
        *h = '\r';
        if (status == 204 || status == 304 || status < 200) {
            blen = 0;
        } else if (cl != NULL) {
            blen = strtoul(cl + 17, NULL, 10);
        } else if (te != NULL) {
            blen = chunked_len(p + hlen, c->in_len - hlen);
            if (blen == 0) {
                return c->in_len < IN_SIZE ? 0 : -1;
            }
        } else {
            return -1;   /* body to the close: not expected here */
        }
        total = hlen + blen;
        if (c->in_len < total) {
            return 0;
        }
        answered(c, status, p + hlen, blen, t);
        memmove(c->in, c->in + total, c->in_len - total);
        c->in_len -= total;
    }
}

static void
conn_read(conn_t *c)
{
    ssize_t  n;

    for ( ;; ) {
        n = read(c->fd, c->in + c->in_len, IN_SIZE - c->in_len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            conn_reset(c);
            return;
        }
        c->in_len += n;
        if (parse(c, now_s()) < 0) {
            conn_reset(c);
            return;
        }
    }
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t  x = *(const int64_t *) a, y = *(const int64_t *) b;

    return (x > y) - (x < y);
}

static void
report(void)
{
    size_t    i, k = 0, kinds[4] = { 0, 0, 0, 0 }, truth = 0;
    int64_t  *l = malloc((P.sent + 1) * sizeof(int64_t));
    double    span = P.send_end - P.t0;
    double    q[6] = { 0.5, 0.9, 0.99, 0.999, 1.0 };
    int64_t   v[6];
    int       j;

    for (i = 0; i < P.sent; i++) {
        if (P.lat_us[i] >= 0) {
            l[k++] = P.lat_us[i];
        }
        kinds[P.kind[i] == 'n' ? 0 : P.kind[i] == 'r' ? 1
              : P.kind[i] == 'p' ? 2 : 3]++;
        truth += P.uniq[i];
    }
    qsort(l, k, sizeof(int64_t), cmp_i64);
    for (j = 0; j < 5; j++) {
        double  x = q[j] * k;           /* the ceil(q k)-th smallest */
        size_t  r = (size_t) x;

        r += (double) r < x;
        v[j] = k ? l[r ? r - 1 : 0] : -1;
    }
    printf("BENCH {\"rate\":%.0f,\"duration_s\":%.3f,\"connections\":%d,"
           "\"events\":%zu,\"sent\":%llu,\"send_s\":%.6f,"
           "\"achieved_rate\":%.1f,\"max_lag_ms\":%.3f,"
           "\"answered\":%llu,\"answered_s\":%.6f,"
           "\"lost\":%llu,\"unanswered\":%llu,"
           "\"reconnects\":%llu,"
           "\"status\":{\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu,"
           "\"other\":%llu,\"200\":%llu,\"202\":%llu,\"204\":%llu,"
           "\"400\":%llu},\"views_answered\":%llu,"
           "\"kinds\":{\"new\":%zu,\"retry\":%zu,\"progress\":%zu,"
           "\"malformed\":%zu},\"truth\":%zu,"
           "\"latency_us\":{\"p50\":%lld,\"p90\":%lld,\"p99\":%lld,"
           "\"p999\":%lld,\"max\":%lld}}\n",
           P.rate, P.duration, P.conns, P.n, (unsigned long long) P.sent,
           span, span > 0 ? P.sent / span : 0, P.max_lag * 1e3,
           (unsigned long long) P.answered,
           P.last_answer > 0 ? P.last_answer - P.t0 : 0,
           (unsigned long long) P.lost,
           (unsigned long long) (P.sent - P.answered - P.lost),
           (unsigned long long) P.reconnects,
           (unsigned long long) P.status[2], (unsigned long long) P.status[3],
           (unsigned long long) P.status[4], (unsigned long long) P.status[5],
           (unsigned long long) (P.status[0] + P.status[1]),
           (unsigned long long) P.s200, (unsigned long long) P.s202,
           (unsigned long long) P.s204, (unsigned long long) P.s400,
           (unsigned long long) P.views_answered,
           kinds[0], kinds[1], kinds[2], kinds[3], truth,
           (long long) v[0], (long long) v[1], (long long) v[2],
           (long long) v[3], (long long) v[4]);
    free(l);
}

static void
options(int argc, char **argv)
{
    int  i;

    P.conns = 64;
    P.drain = 10;
    P.path = "/engagement/view";
    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) {
            P.port = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--path") == 0) {
            P.path = argv[i + 1];
        } else if (strcmp(argv[i], "--bodies") == 0) {
            P.file = argv[i + 1];
        } else if (strcmp(argv[i], "--rate") == 0) {
            P.rate = atof(argv[i + 1]);
        } else if (strcmp(argv[i], "--duration") == 0) {
            P.duration = atof(argv[i + 1]);
        } else if (strcmp(argv[i], "--connections") == 0) {
            P.conns = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--drain") == 0) {
            P.drain = atof(argv[i + 1]);
        }
    }
    if (P.port <= 0 || P.file == NULL || P.rate <= 0 || P.duration <= 0
        || P.conns < 1 || P.conns > MAX_CONNS)
    {
        fprintf(stderr, "usage: paced --port P --path /x --bodies FILE "
                "--rate R --duration S [--connections N] [--drain S]\n");
        exit(2);
    }
}

int
main(int argc, char **argv)
{
    struct epoll_event  evs[256];
    struct timespec     ts;
    size_t              next = 0;
    double              t, due, wait, stop;
    int                 i, n;
    conn_t             *c;

    options(argc, argv);
    load_bodies();
    P.epfd = epoll_create1(0);
    for (i = 0; i < P.conns; i++) {
        P.c[i].in = malloc(IN_SIZE);
        conn_open(&P.c[i]);
    }
    P.t0 = now_s();
    stop = P.t0 + P.duration;
    P.send_end = 0;

    for ( ;; ) {
        t = now_s();
        /* send everything that is due, then write once per connection */
        while (next < P.n && (due = P.t0 + next / P.rate) <= t && due < stop) {
            if (t - due > P.max_lag) {
                P.max_lag = t - due;
            }
            dispatch(next++);
        }
        for (i = 0; i < P.conns; i++) {
            if (P.c[i].out_len > P.c[i].out_off && !P.c[i].want_write) {
                conn_flush(&P.c[i]);
            }
        }
        if (P.send_end == 0
            && (next >= P.n || P.t0 + next / P.rate >= stop))
        {
            P.send_end = t;
        }
        if (P.send_end != 0
            && (P.answered + P.lost == P.sent || t > P.send_end + P.drain))
        {
            break;
        }
        wait = P.send_end ? 0.05 : P.t0 + next / P.rate - t;
        if (wait < 0) {
            wait = 0;
        }
        ts.tv_sec = (time_t) wait;
        ts.tv_nsec = (long) ((wait - ts.tv_sec) * 1e9);
        n = epoll_pwait2(P.epfd, evs, 256, &ts, NULL);
        for (i = 0; i < n; i++) {
            c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                conn_read(c);
            }
            if (evs[i].events & EPOLLOUT) {
                conn_flush(c);
            }
        }
    }
    report();
    return 0;
}
