/*
 * Probing over TCP through the C interface, with real sockets on loopback and the real clock.
 *
 * Both servers are reached over TCP. The agent asks for a flow to a server (sf_agent_poll_flow); this
 * program connects a non-blocking socket and reports the outcome (sf_agent_handle_flow), writes each
 * probe the agent hands out on that server's flow (sf_agent_poll_transmit), reads what comes back
 * into a buffer of SF_MAX_MESSAGE bytes, cuts it into messages with sf_frame and hands each one to
 * sf_agent_handle_message. It waits in poll() for the sockets or the agent's next deadline, never
 * longer.
 *
 * Usage: failover_tcp PRIMARY BACKUP UNTIL
 *   PRIMARY, BACKUP  the servers' addresses, "127.0.0.1:5060" or "[::1]:5060"
 *   UNTIL            "replies": stop once both servers answered a probe;
 *                    "switch": stop once a switch was applied
 * It prints one line per thing that happened (no times: they are real) and exits 0 when UNTIL was
 * reached within 10 s, 1 otherwise. tests/c_interface.rs runs it against responders of its own.
 *
 * This example has no TLS library: a server configured for TLS would be reported as a TLS failure.
 * With mbedTLS or wolfSSL, the handshake runs between the connect and SF_FLOW_EVENT_CONNECTED, and
 * a certificate that does not verify is reported with its SF_FLOW_ERR_TLS_* reason.
 *
 * Build (tests/c_interface.rs does this):
 *   cargo rustc --lib --features ffi --crate-type staticlib
 *   gcc -std=c11 -Wall -Wextra -Werror -pedantic -I include examples/c/failover_tcp.c \
 *       target/debug/libsip_failover.a -lpthread -ldl -lm -o failover_tcp
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sip_failover.h"

#define RUN_LIMIT_US (10u * 1000u * 1000u)
#define MAX_ROUNDS 16

/* One stream flow per server: the socket, the id the agent gave it and what was read, not yet framed. */
typedef struct {
    int fd; /* -1: no flow */
    uint16_t id;
    int connecting;
    size_t used;
    uint8_t rx[SF_MAX_MESSAGE];
} flow;

static flow flows[2] = {{-1, 0, 0, 0, {0}}, {-1, 0, 0, 0, {0}}};
static struct timespec start;
static int until_switch;
static int replied[2];
static int done;

static void check(sf_status st, const char *what) {
    if (st != SF_OK) {
        fprintf(stderr, "FAIL %s: %s (%d)\n", what, sf_status_str(st), (int)st);
        exit(1);
    }
}

/* Microseconds since the program started, on the monotonic clock: the agent's time. */
static uint64_t now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    int64_t us = (int64_t)(t.tv_sec - start.tv_sec) * 1000000 + (t.tv_nsec - start.tv_nsec) / 1000;
    return us < 0 ? 0 : (uint64_t)us;
}

static const char *side_name(sf_side s) {
    return s == SF_SIDE_PRIMARY ? "primary" : "backup";
}

static const char *down_reason(uint8_t r) {
    switch (r) {
    case SF_DOWN_TIMEOUT: return "timeout";
    case SF_DOWN_STATUS: return "status";
    case SF_DOWN_REFUSED: return "refused";
    case SF_DOWN_FLOW: return "flow";
    default: return "other";
    }
}

static const char *transport_name(sf_transport t) {
    switch (t) {
    case SF_TRANSPORT_UDP: return "udp";
    case SF_TRANSPORT_TCP: return "tcp";
    case SF_TRANSPORT_TLS: return "tls";
    default: return "other";
    }
}

static socklen_t to_sockaddr(const sf_addr *a, struct sockaddr_storage *out) {
    memset(out, 0, sizeof *out);
    if (a->family == SF_AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)out;
        v4->sin_family = AF_INET;
        v4->sin_port = htons(a->port);
        memcpy(&v4->sin_addr, a->addr, 4);
        return sizeof *v4;
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(a->port);
    v6->sin6_flowinfo = htonl(a->flowinfo);
    v6->sin6_scope_id = a->scope_id;
    memcpy(&v6->sin6_addr, a->addr, 16);
    return sizeof *v6;
}

static sf_addr from_sockaddr(const struct sockaddr_storage *s) {
    sf_addr a;
    memset(&a, 0, sizeof a);
    if (s->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)s;
        a.family = SF_AF_INET;
        a.port = ntohs(v4->sin_port);
        memcpy(a.addr, &v4->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)s;
        a.family = SF_AF_INET6;
        a.port = ntohs(v6->sin6_port);
        a.flowinfo = ntohl(v6->sin6_flowinfo);
        a.scope_id = v6->sin6_scope_id;
        memcpy(a.addr, &v6->sin6_addr, 16);
    }
    return a;
}

/* Drops the socket of `side` without telling the agent. */
static void drop_flow(sf_side side) {
    flow *f = &flows[side];
    if (f->fd >= 0) {
        close(f->fd);
    }
    f->fd = -1;
    f->connecting = 0;
    f->used = 0;
}

/* The flow of `side` failed: drop it and tell the agent why. */
static void fail_flow(sf_agent *agent, sf_side side, sf_flow_error why) {
    printf("%s %s flow=%u\n", sf_flow_error_name(why), side_name(side), (unsigned)flows[side].id);
    drop_flow(side);
    check(sf_agent_handle_flow(agent, now_us(), side, flows[side].id, SF_FLOW_EVENT_FAILED, why), "flow failed");
}

/* The flow of `side` connected: tell the agent, and which local address its probes leave from (their
 * Via names it). */
static void connected(sf_agent *agent, sf_side side) {
    flow *f = &flows[side];
    f->connecting = 0;
    printf("connected %s flow=%u\n", side_name(side), (unsigned)f->id);
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(f->fd, (struct sockaddr *)&local, &len) == 0) {
        sf_command c;
        memset(&c, 0, sizeof c);
        c.kind = SF_COMMAND_LOCAL_ADDR;
        c.side = side;
        c.addr = from_sockaddr(&local);
        check(sf_agent_handle_command(agent, now_us(), &c), "local address");
    }
    check(sf_agent_handle_flow(agent, now_us(), side, f->id, SF_FLOW_EVENT_CONNECTED, SF_FLOW_ERR_NONE),
          "flow connected");
}

static sf_flow_error connect_error(int err) {
    return err == ETIMEDOUT ? SF_FLOW_ERR_CONNECT_TIMEOUT : SF_FLOW_ERR_REFUSED;
}

static void open_flow(sf_agent *agent, const sf_flow_command *fc) {
    flow *f = &flows[fc->side];
    drop_flow(fc->side);
    f->id = fc->id;
    printf("open %s flow=%u %s\n", side_name(fc->side), (unsigned)fc->id, transport_name(fc->transport));
    if (fc->transport != SF_TRANSPORT_TCP) {
        fail_flow(agent, fc->side, SF_FLOW_ERR_TLS_OTHER); /* no TLS library in this example */
        return;
    }
    struct sockaddr_storage to;
    socklen_t to_len = to_sockaddr(&fc->destination, &to);
    f->fd = socket(to.ss_family, SOCK_STREAM, 0);
    if (f->fd < 0 || fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) | O_NONBLOCK) != 0) {
        fail_flow(agent, fc->side, SF_FLOW_ERR_REFUSED);
        return;
    }
    if (connect(f->fd, (struct sockaddr *)&to, to_len) == 0) {
        connected(agent, fc->side);
    } else if (errno == EINPROGRESS) {
        f->connecting = 1;
    } else {
        fail_flow(agent, fc->side, connect_error(errno));
    }
}

/* Where `needle` first starts in hay[0..len], or `len`. */
static size_t find(const uint8_t *hay, size_t len, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return i;
        }
    }
    return len;
}

/* Writes the probe (or keep-alive ping) on the server's flow. */
static void write_flow(sf_agent *agent, const sf_transmit *tx, const uint8_t *bytes) {
    flow *f = &flows[tx->server];
    if (tx->transport == SF_TRANSPORT_UDP || f->fd < 0 || f->connecting) {
        fprintf(stderr, "FAIL bytes for %s with no open flow\n", side_name(tx->server));
        exit(1);
    }
    /* The Via line's value, to show which transport the probe names. */
    size_t via = find(bytes, tx->len, "\r\nVia: ");
    size_t via_len = 0;
    if (via < tx->len) {
        via += 7;
        via_len = find(bytes + via, tx->len - via, "\r\n");
    }
    printf("send %s attempt=%u %s via=%.*s\n", side_name(tx->server), (unsigned)tx->attempt,
           transport_name(tx->transport), (int)via_len, via < tx->len ? (const char *)bytes + via : "");
    size_t sent = 0;
    while (sent < tx->len) {
        ssize_t n = send(f->fd, bytes + sent, tx->len - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            fail_flow(agent, tx->server, SF_FLOW_ERR_REFUSED);
            return;
        }
        sent += (size_t)n;
    }
}

/* Reads what the flow of `side` has, and hands every whole message to the agent. */
static void read_flow(sf_agent *agent, sf_side side) {
    flow *f = &flows[side];
    if (f->used == sizeof f->rx) { /* sf_frame never leaves a full buffer undecided */
        fail_flow(agent, side, SF_FLOW_ERR_FRAMING);
        return;
    }
    ssize_t n = recv(f->fd, f->rx + f->used, sizeof f->rx - f->used, 0);
    if (n == 0) {
        fail_flow(agent, side, SF_FLOW_ERR_CLOSED);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            fail_flow(agent, side, SF_FLOW_ERR_REFUSED); /* reset */
        }
        return;
    }
    f->used += (size_t)n;
    for (;;) { /* each round consumes at least two bytes */
        sf_frame_kind kind;
        size_t len;
        sf_status st = sf_frame(f->rx, f->used, &kind, &len);
        if (st == SF_NONE) {
            return;
        }
        if (st != SF_OK) {
            printf("framing %s: %s\n", side_name(side), sf_status_str(st));
            fail_flow(agent, side, SF_FLOW_ERR_FRAMING);
            return;
        }
        if (kind == SF_FRAME_MESSAGE) {
            check(sf_agent_handle_message(agent, now_us(), side, f->rx, len), "message");
        } else {
            check(sf_agent_handle_flow(agent, now_us(), side, f->id, SF_FLOW_EVENT_PONG, SF_FLOW_ERR_NONE), "pong");
        }
        memmove(f->rx, f->rx + len, f->used - len);
        f->used -= len;
    }
}

static void print_event(sf_agent *agent, const sf_event *ev) {
    switch (ev->kind) {
    case SF_EVENT_PROBE_SENT:
        printf("probe %s attempt=%u\n", side_name(ev->side), (unsigned)ev->attempt);
        break;
    case SF_EVENT_REPLY:
        printf("reply %s attempt=%u status=%u\n", side_name(ev->side), (unsigned)ev->attempt, (unsigned)ev->status);
        replied[ev->side] = 1;
        break;
    case SF_EVENT_FLOW_UP:
        printf("flow_up %s\n", side_name(ev->side));
        break;
    case SF_EVENT_FLOW_DOWN:
        printf("flow_down %s reason=%s\n", side_name(ev->side), sf_flow_error_name(ev->flow_error));
        break;
    case SF_EVENT_ATTEMPT_REFUSED:
        printf("attempt_ended %s attempt=%u\n", side_name(ev->side), (unsigned)ev->attempt);
        break;
    case SF_EVENT_SERVER_UP:
        printf("server_up %s\n", side_name(ev->side));
        break;
    case SF_EVENT_SERVER_DOWN:
        printf("server_down %s reason=%s flow_error=%s\n", side_name(ev->side), down_reason(ev->reason),
               sf_flow_error_name(ev->flow_error));
        break;
    case SF_EVENT_SWITCH: {
        printf("switch %s->%s generation=%" PRIu32 "\n", side_name(ev->side), side_name(ev->other),
               ev->generation);
        /* Firmware applies the whole bundle here, then acknowledges it. */
        sf_command applied;
        memset(&applied, 0, sizeof applied);
        applied.kind = SF_COMMAND_APPLIED;
        applied.generation = ev->generation;
        check(sf_agent_handle_command(agent, now_us(), &applied), "applied");
        break;
    }
    case SF_EVENT_APPLIED:
        printf("applied %s generation=%" PRIu32 "\n", side_name(ev->side), ev->generation);
        if (until_switch) {
            done = 1;
        }
        break;
    default:
        printf("%s %s\n", sf_event_kind_name(ev->kind), side_name(ev->side));
        break;
    }
}

/* The run loop's output half, in the documented order: flows, then transmits, then events; again until
 * a round has nothing (a flow refused at once asks for the next attempt's flow). */
static void drain(sf_agent *agent) {
    for (int round = 0; round < MAX_ROUNDS; round++) {
        int progressed = 0;
        sf_flow_command fc;
        while (sf_agent_poll_flow(agent, &fc) == SF_OK) {
            progressed = 1;
            if (fc.kind == SF_FLOW_OPEN) {
                open_flow(agent, &fc);
            } else if (flows[fc.side].id == fc.id) {
                printf("close %s flow=%u reason=%s\n", side_name(fc.side), (unsigned)fc.id,
                       sf_flow_error_name(fc.reason));
                drop_flow(fc.side);
            }
        }
        uint8_t buf[1500];
        sf_transmit tx;
        while (sf_agent_poll_transmit(agent, now_us(), buf, sizeof buf, &tx) == SF_OK) {
            progressed = 1;
            write_flow(agent, &tx, buf);
        }
        sf_event ev;
        while (sf_agent_poll_event(agent, &ev) == SF_OK) {
            progressed = 1;
            print_event(agent, &ev);
        }
        if (!progressed) {
            return;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[3], "replies") != 0 && strcmp(argv[3], "switch") != 0)) {
        fprintf(stderr, "usage: %s PRIMARY BACKUP replies|switch\n", argv[0]);
        return 2;
    }
    until_switch = strcmp(argv[3], "switch") == 0;
    clock_gettime(CLOCK_MONOTONIC, &start);

    static sf_agent_storage storage;
    sf_config cfg;
    check(sf_config_init(&cfg), "config defaults");
    check(sf_addr_parse(argv[1], &cfg.primary.next_hop), "primary address");
    cfg.primary.uri_host = "pbx-a.example";
    cfg.primary.transport = SF_TRANSPORT_TCP;
    cfg.backup_enabled = 1;
    check(sf_addr_parse(argv[2], &cfg.backup.next_hop), "backup address");
    cfg.backup.uri_host = "pbx-b.example";
    cfg.backup.transport = SF_TRANSPORT_TCP;

    sf_agent *agent = NULL;
    check(sf_agent_init(&storage, sizeof storage, &cfg, now_us(), 42, &agent), "init");
    drain(agent);

    while (!done && !(!until_switch && replied[0] && replied[1])) {
        uint64_t now = now_us();
        if (now >= RUN_LIMIT_US) {
            printf("FAIL not reached in %u s\n", RUN_LIMIT_US / 1000000u);
            return 1;
        }
        uint64_t wake = RUN_LIMIT_US;
        uint64_t deadline;
        if (sf_agent_poll_timeout(agent, &deadline) == SF_OK && deadline < wake) {
            wake = deadline;
        }
        struct pollfd fds[2];
        sf_side sides[2];
        nfds_t n = 0;
        for (int s = 0; s < 2; s++) {
            if (flows[s].fd >= 0) {
                fds[n].fd = flows[s].fd;
                fds[n].events = flows[s].connecting ? POLLOUT : POLLIN;
                fds[n].revents = 0;
                sides[n] = (sf_side)s;
                n++;
            }
        }
        int wait_ms = wake > now ? (int)((wake - now + 999) / 1000) : 0;
        if (poll(fds, n, wait_ms) < 0 && errno != EINTR) {
            perror("poll");
            return 1;
        }
        for (nfds_t i = 0; i < n; i++) {
            sf_side side = sides[i];
            if (fds[i].revents == 0 || flows[side].fd != fds[i].fd) {
                continue;
            }
            if (flows[side].connecting) {
                int err = 0;
                socklen_t len = sizeof err;
                if (getsockopt(fds[i].fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
                    err = errno;
                }
                if (err == 0) {
                    connected(agent, side);
                } else {
                    fail_flow(agent, side, connect_error(err));
                }
            } else {
                read_flow(agent, side);
            }
        }
        if (sf_agent_poll_timeout(agent, &deadline) == SF_OK && deadline <= now_us()) {
            check(sf_agent_handle_timeout(agent, now_us()), "timeout");
        }
        drain(agent);
    }
    for (int s = 0; s < 2; s++) {
        drop_flow((sf_side)s);
    }
    if (until_switch) {
        sf_state st;
        check(sf_agent_state(agent, &st), "state");
        printf("OK active=%s generation=%" PRIu32 "\n", side_name(st.active), st.generation);
    } else {
        printf("OK both servers answered over tcp\n");
    }
    return 0;
}
