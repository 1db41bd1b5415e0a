/*
 * A whole failover through the C interface, on a fake clock.
 *
 * The primary PBX never answers (black-holed); the backup answers every OPTIONS 20 ms after it is sent,
 * with a 200 OK built by echoing the request's Via, From, To, Call-ID and CSeq lines. The agent must switch
 * to the backup at exactly 1600 ms (attempts at 0, 800 and 1200 ms, the last wait ending at 1600 ms) with
 * generation 1; the program acknowledges the switch as applied, as firmware would once the bundle is in
 * force.
 *
 * No heap: the agent lives in static storage, every buffer is on the stack or static.
 *
 * Build (tests/c_interface.rs does this):
 *   cargo rustc --lib --features ffi --crate-type staticlib
 *   gcc -std=c11 -Wall -Wextra -Werror -I include examples/c/failover.c target/debug/libsip_failover.a \
 *       -lpthread -ldl -lm -o failover
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip_failover.h"

#define MS 1000u
#define REPLY_DELAY_US (20u * MS)
#define RUN_UNTIL_US (5000u * MS)
#define MAX_DATAGRAM 1500u
#define MAX_IN_FLIGHT 8u

/* The fake clock, in microseconds. */
static uint64_t now_us;

/* Replies on their way back to the agent. */
typedef struct {
    int used;
    uint64_t at_us;
    sf_addr from;
    size_t len;
    uint8_t bytes[MAX_DATAGRAM];
} in_flight;

static in_flight wire[MAX_IN_FLIGHT];

static uint64_t switch_at_us = UINT64_MAX;
static uint32_t switch_generation;
static unsigned switches;

static void check(sf_status st, const char *what) {
    if (st != SF_OK) {
        fprintf(stderr, "FAIL %s: %s (%d)\n", what, sf_status_str(st), (int)st);
        exit(1);
    }
}

static void expect(sf_status got, sf_status want, const char *what) {
    if (got != want) {
        fprintf(stderr, "FAIL %s: got %s, want %s\n", what, sf_status_str(got), sf_status_str(want));
        exit(1);
    }
}

static const char *side_name(sf_side s) {
    return s == SF_SIDE_PRIMARY ? "primary" : "backup";
}

static const char *switch_reason(uint8_t r) {
    switch (r) {
    case SF_SWITCH_FAILOVER: return "failover";
    case SF_SWITCH_FAILBACK: return "failback";
    case SF_SWITCH_MANUAL_FAILBACK: return "manual_failback";
    case SF_SWITCH_FORCED: return "forced";
    case SF_SWITCH_PLANNED: return "planned";
    case SF_SWITCH_RECONFIGURED: return "reconfigured";
    default: return "other";
    }
}

static const char *down_reason(uint8_t r) {
    switch (r) {
    case SF_DOWN_TIMEOUT: return "timeout";
    case SF_DOWN_STATUS: return "status";
    case SF_DOWN_REFUSED: return "refused";
    default: return "other";
    }
}

/* Appends `n` bytes to out[*len..cap]; returns 0 when they do not fit. */
static int put(uint8_t *out, size_t *len, size_t cap, const char *s, size_t n) {
    if (n > cap - *len) {
        return 0;
    }
    memcpy(out + *len, s, n);
    *len += n;
    return 1;
}

/* A 200 OK to the request in req[0..len]: the status line, then the request's Via, From, To (with a tag
 * added), Call-ID and CSeq lines, then an empty body. Returns the reply's length, 0 if it does not fit. */
static size_t build_reply(const uint8_t *req, size_t len, uint8_t *out, size_t cap) {
    static const char *const echoed[] = {"Via:", "From:", "To:", "Call-ID:", "CSeq:"};
    size_t n = 0;
    if (!put(out, &n, cap, "SIP/2.0 200 OK\r\n", 16)) {
        return 0;
    }
    for (size_t h = 0; h < sizeof echoed / sizeof echoed[0]; h++) {
        size_t name_len = strlen(echoed[h]);
        size_t start = 0;
        while (start < len) {
            size_t end = start;
            while (end + 1 < len && !(req[end] == '\r' && req[end + 1] == '\n')) {
                end++;
            }
            if (end + 1 >= len) {
                break;
            }
            size_t line_len = end - start;
            if (line_len >= name_len && memcmp(req + start, echoed[h], name_len) == 0) {
                if (!put(out, &n, cap, (const char *)req + start, line_len)) {
                    return 0;
                }
                if (strcmp(echoed[h], "To:") == 0 && !put(out, &n, cap, ";tag=c-example", 14)) {
                    return 0;
                }
                if (!put(out, &n, cap, "\r\n", 2)) {
                    return 0;
                }
                break;
            }
            start = end + 2;
        }
    }
    if (!put(out, &n, cap, "Content-Length: 0\r\n\r\n", 21)) {
        return 0;
    }
    return n;
}

static void send_datagram(const sf_transmit *tx, const uint8_t *bytes) {
    if (tx->server == SF_SIDE_PRIMARY) {
        return; /* black-holed */
    }
    for (size_t i = 0; i < MAX_IN_FLIGHT; i++) {
        if (!wire[i].used) {
            size_t n = build_reply(bytes, tx->len, wire[i].bytes, sizeof wire[i].bytes);
            if (n == 0) {
                fprintf(stderr, "FAIL could not build a reply\n");
                exit(1);
            }
            wire[i].used = 1;
            wire[i].at_us = now_us + REPLY_DELAY_US;
            wire[i].from = tx->destination;
            wire[i].len = n;
            return;
        }
    }
    fprintf(stderr, "FAIL too many datagrams in flight\n");
    exit(1);
}

static void print_event(const sf_event *ev) {
    uint64_t t = now_us / MS;
    switch (ev->kind) {
    case SF_EVENT_PROBE_SENT:
        printf("t=%" PRIu64 " probe %s attempt=%u\n", t, side_name(ev->side), (unsigned)ev->attempt);
        break;
    case SF_EVENT_REPLY:
        printf("t=%" PRIu64 " reply %s attempt=%u status=%u rtt_us=%" PRIu64 "\n", t, side_name(ev->side),
               (unsigned)ev->attempt, (unsigned)ev->status, ev->rtt_us);
        break;
    case SF_EVENT_ATTEMPT_TIMED_OUT:
        printf("t=%" PRIu64 " timeout %s attempt=%u\n", t, side_name(ev->side), (unsigned)ev->attempt);
        break;
    case SF_EVENT_SERVER_UP:
        printf("t=%" PRIu64 " server_up %s\n", t, side_name(ev->side));
        break;
    case SF_EVENT_SERVER_DOWN:
        printf("t=%" PRIu64 " server_down %s reason=%s\n", t, side_name(ev->side), down_reason(ev->reason));
        break;
    case SF_EVENT_SWITCH:
        printf("t=%" PRIu64 " switch %s->%s reason=%s generation=%" PRIu32 "\n", t, side_name(ev->side),
               side_name(ev->other), switch_reason(ev->reason), ev->generation);
        break;
    case SF_EVENT_APPLIED:
        printf("t=%" PRIu64 " applied %s generation=%" PRIu32 "\n", t, side_name(ev->side), ev->generation);
        break;
    default:
        printf("t=%" PRIu64 " %s\n", t, sf_event_kind_name(ev->kind));
        break;
    }
}

/* The run loop's output half: every transmit, then every event. */
static void drain(sf_agent *agent) {
    uint8_t buf[MAX_DATAGRAM];
    sf_transmit tx;
    sf_status st;
    while ((st = sf_agent_poll_transmit(agent, now_us, buf, sizeof buf, &tx)) == SF_OK) {
        send_datagram(&tx, buf);
    }
    expect(st, SF_NONE, "poll_transmit");
    sf_event ev;
    while ((st = sf_agent_poll_event(agent, &ev)) == SF_OK) {
        print_event(&ev);
        if (ev.kind == SF_EVENT_SWITCH) {
            switches++;
            switch_at_us = now_us;
            switch_generation = ev.generation;
            /* Firmware applies the whole bundle here, then acknowledges it. */
            sf_command applied;
            memset(&applied, 0, sizeof applied);
            applied.kind = SF_COMMAND_APPLIED;
            applied.generation = ev.generation;
            check(sf_agent_handle_command(agent, now_us, &applied), "applied");
        }
    }
    expect(st, SF_NONE, "poll_event");
}

/* Wrong arguments come back as status codes, never as a crash. */
static void bad_arguments(const sf_config *good) {
    static sf_agent_storage spare;
    static uint64_t unaligned[(SF_AGENT_STORAGE_SIZE / 8) + 1];
    sf_agent *a = NULL;
    sf_event ev;
    uint8_t small[8];
    sf_transmit tx;

    expect(sf_agent_init(NULL, sizeof spare, good, 0, 1, &a), SF_ERR_NULL, "init without storage");
    expect(sf_agent_init(&spare, sizeof spare, NULL, 0, 1, &a), SF_ERR_NULL, "init without config");
    expect(sf_agent_init(&spare, sf_agent_size() - 1, good, 0, 1, &a), SF_ERR_STORAGE, "init, storage short");
    expect(sf_agent_init((uint8_t *)unaligned + 1, sizeof spare, good, 0, 1, &a), SF_ERR_STORAGE,
           "init, storage misaligned");
    expect(sf_agent_poll_event((sf_agent *)(void *)&spare, &ev), SF_ERR_NOT_INITIALIZED, "uninitialised agent");
    expect(sf_agent_handle_timeout(NULL, 0), SF_ERR_NULL, "null agent");

    sf_config bad = *good;
    bad.interval_ms = 500;
    expect(sf_agent_init(&spare, sizeof spare, &bad, 0, 1, &a), SF_ERR_INTERVAL_TOO_SHORT, "short interval");
    bad = *good;
    bad.ladder_len = 0;
    expect(sf_agent_init(&spare, sizeof spare, &bad, 0, 1, &a), SF_ERR_LADDER, "empty ladder");
    bad = *good;
    bad.failback_mode = 7;
    expect(sf_agent_init(&spare, sizeof spare, &bad, 0, 1, &a), SF_ERR_INVALID_ARGUMENT, "failback mode");
    bad = *good;
    bad.primary.uri_host = "not a host";
    expect(sf_agent_init(&spare, sizeof spare, &bad, 0, 1, &a), SF_ERR_HOST, "host with a space");
    bad = *good;
    bad.primary.next_hop.family = 9;
    expect(sf_agent_init(&spare, sizeof spare, &bad, 0, 1, &a), SF_ERR_ADDRESS, "address family");
    sf_addr addr;
    expect(sf_addr_parse("pbx.example:5060", &addr), SF_ERR_ADDRESS, "unparsable address");

    check(sf_agent_init(&spare, sizeof spare, good, 0, 1, &a), "init spare");
    expect(sf_agent_handle_refused(a, 0, 2), SF_ERR_INVALID_ARGUMENT, "side out of range");
    sf_command cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.kind = 200;
    expect(sf_agent_handle_command(a, 0, &cmd), SF_ERR_INVALID_ARGUMENT, "command kind");
    cmd.kind = SF_COMMAND_APPLIED;
    cmd.generation = 9;
    expect(sf_agent_handle_command(a, 0, &cmd), SF_ERR_STALE_GENERATION, "stale generation");
    expect(sf_agent_poll_transmit(a, 0, small, sizeof small, &tx), SF_ERR_BUFFER_TOO_SMALL, "small buffer");
    if (tx.len <= sizeof small) {
        fprintf(stderr, "FAIL buffer too small but needs only %zu bytes\n", tx.len);
        exit(1);
    }
    expect(sf_agent_handle_datagram(a, 0, &good->primary.next_hop, (const uint8_t *)"garbage", 7), SF_OK,
           "garbage datagram");
    check(sf_agent_release(a), "release");
    expect(sf_agent_poll_event(a, &ev), SF_ERR_NOT_INITIALIZED, "released agent");
    printf("bad-arguments ok\n");
}

int main(void) {
    static sf_agent_storage storage;
    sf_config cfg;
    check(sf_config_init(&cfg), "config defaults");
    check(sf_addr_parse("127.0.0.1:5060", &cfg.primary.next_hop), "primary address");
    cfg.primary.uri_host = "pbx-a.example";
    cfg.primary.uri_port = 5060;
    cfg.backup_enabled = 1;
    check(sf_addr_parse("127.0.0.2:5060", &cfg.backup.next_hop), "backup address");
    cfg.backup.uri_host = "pbx-b.example";
    cfg.backup.uri_port = 5060;

    printf("agent: %zu bytes, align %zu (storage %zu)\n", sf_agent_size(), sf_agent_align(), sizeof storage);
    bad_arguments(&cfg);

    sf_agent *agent = NULL;
    now_us = 0;
    check(sf_agent_init(&storage, sizeof storage, &cfg, now_us, 42, &agent), "init");
    drain(agent);

    while (now_us < RUN_UNTIL_US) {
        /* Sleep until the agent's next deadline or the next datagram, whichever is first. */
        uint64_t wake = UINT64_MAX;
        if (sf_agent_poll_timeout(agent, &wake) != SF_OK) {
            wake = UINT64_MAX;
        }
        in_flight *next = NULL;
        for (size_t i = 0; i < MAX_IN_FLIGHT; i++) {
            if (wire[i].used && wire[i].at_us < wake) {
                wake = wire[i].at_us;
                next = &wire[i];
            }
        }
        if (wake == UINT64_MAX || wake > RUN_UNTIL_US) {
            break;
        }
        if (wake > now_us) {
            now_us = wake;
        }
        if (next != NULL) {
            next->used = 0;
            check(sf_agent_handle_datagram(agent, now_us, &next->from, next->bytes, next->len), "datagram");
        } else {
            check(sf_agent_handle_timeout(agent, now_us), "timeout");
        }
        drain(agent);
    }

    sf_state st;
    check(sf_agent_state(agent, &st), "state");
    printf("state active=%s generation=%" PRIu32 " pending=%u\n", side_name(st.active), st.generation,
           (unsigned)st.has_pending);
    sf_snapshot snap;
    check(sf_agent_snapshot(agent, &snap), "snapshot");

    if (switches != 1 || switch_at_us != 1600u * MS || switch_generation != 1 || st.active != SF_SIDE_BACKUP ||
        st.generation != 1 || snap.active != SF_SIDE_BACKUP) {
        printf("FAIL switches=%u at_us=%" PRIu64 " generation=%" PRIu32 "\n", switches, switch_at_us,
               switch_generation);
        return 1;
    }

    /* A reboot: a new agent resumes from the snapshot, keyed with fresh entropy, on the backup. */
    static sf_agent_storage rebooted;
    static const uint8_t key[32] = {0x5e, 0xed, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    sf_agent *again = NULL;
    check(sf_agent_resume_keyed(&rebooted, sizeof rebooted, &cfg, now_us, key, &snap, &again), "resume");
    sf_state after;
    check(sf_agent_state(again, &after), "state after resume");
    printf("resumed active=%s generation=%" PRIu32 "\n", side_name(after.active), after.generation);
    if (after.active != SF_SIDE_BACKUP || after.generation != 1) {
        printf("FAIL resume\n");
        return 1;
    }
    printf("OK failover at %" PRIu64 " ms\n", switch_at_us / MS);
    return 0;
}
