/*
 * The reference phone: a small SIP user agent on libre (the SIP stack under baresip) with the failover
 * agent living inside libre's own event loop, as desk-phone firmware would hold it.
 *
 * The phone has one account. It registers (REGISTER with an expiry, refreshed by libre's sipreg), keeps
 * one BLF subscription (SUBSCRIBE to the dialog event package, refreshed), answers one call, and holds
 * an app URL and a VPN endpoint for each side. The agent probes both PBXs with OPTIONS from two UDP
 * sockets of libre's (one per side); its timer is one libre tmr re-armed from sf_agent_poll_timeout;
 * there is no thread and no second loop: everything happens in libre's re_main().
 *
 * On SF_EVENT_SWITCH the phone applies the whole bundle of the new side, in this order:
 *   1. REGISTER on the new side's registrar (digest authentication, 423 Min-Expires handled by libre);
 *   2. SUBSCRIBE (dialog event package) on the new side;
 *   3. swap the app URL and the VPN endpoint (the VPN endpoint is recorded, not dialled);
 *   4. remove the old side's binding and subscription (REGISTER and SUBSCRIBE with expiry 0: where the
 *      old server answers, it forgets the phone; where it does not, libre retransmits for 32 s);
 *   5. acknowledge SF_COMMAND_APPLIED with the switch's generation.
 * If step 1 or 2 fails (a refusal such as 403, 503, or no answer within the apply timeout), whatever
 * the new side had accepted is removed again, the phone acknowledges SF_COMMAND_APPLY_FAILED and the
 * previous bundle (registration, subscription, URLs, VPN) stays in force: never half-switched.
 *
 * While a call is up the phone reports SF_COMMAND_IN_CALL, so failback waits for idle. A refresh of the
 * active side that fails is reported as SF_COMMAND_TRANSACTION_FAILED, or as SF_COMMAND_MAINTENANCE for
 * a 503 with Retry-After.
 *
 * Output: one line per event on stdout, `t_us=<real-time clock, us> mono_us=<monotonic, us> event=<name>
 * key=value...`, the agent's events under their sf_event_kind_name and the phone's own steps (ready,
 * register_sent, registered, register_failed, subscribed, subscribe_failed, bundle, left, ack, call).
 *
 * Usage:
 *   phone --primary 127.0.0.1:5060 --backup 127.0.0.1:5062 --sip-port 5070 [--user alice]
 *         [--password secret] [--expires 60] [--interval-ms 2000] [--apply-timeout-ms 4000]
 *         [--app-primary URL] [--app-backup URL] [--vpn-primary HOST:PORT] [--vpn-backup HOST:PORT]
 *
 * Build (scripts/reference-phone.sh and tests/reference_phone.rs do this):
 *   cargo rustc --lib --features ffi --crate-type staticlib
 *   gcc -std=c11 -Wall -Wextra -Werror -DHAVE_INTTYPES_H -DHAVE_STDBOOL_H -I include -I /usr/include/re \
 *       examples/phone/phone.c target/debug/libsip_failover.a -lre -lssl -lcrypto -lz -lpthread -lm -ldl \
 *       -o phone
 * IPv4 only, UDP only: enough for loopback registrars.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <re.h>

#include "sip_failover.h"

#define MAX_REAP 64u
#define SIDES 2

/* ---- configuration ---------------------------------------------------------------------------- */

static struct {
    const char *addr[SIDES]; /* registrar = PBX, "ip:port" */
    const char *app_url[SIDES];
    const char *vpn[SIDES];
    const char *user;
    const char *password;
    uint32_t expires;
    uint32_t interval_ms;
    uint32_t apply_timeout_ms;
    uint16_t sip_port;
} conf = {
    .addr = {NULL, NULL},
    .app_url = {"https://apps.pbx-a.example/phone", "https://apps.pbx-b.example/phone"},
    .vpn = {"vpn-a.example:1194", "vpn-b.example:1194"},
    .user = "alice",
    .password = NULL,
    .expires = 60,
    .interval_ms = 2000,
    .apply_timeout_ms = 4000,
    .sip_port = 0,
};

/* ---- state -------------------------------------------------------------------------------------- */

/* A BLF subscription (RFC 4235 dialog package), on libre's dialogs and transactions. */
struct blf {
    struct sip_dialog *dlg;
    struct sip_auth *auth;
    struct sip_request *req;
    struct tmr tmr;
    int side;
    uint32_t expires;
    unsigned auth_tries;
    bool subscribed;
    bool closing;
};

enum slot_state { SLOT_IDLE, SLOT_REGISTERING, SLOT_SUBSCRIBING, SLOT_READY };

/* What the phone holds on one side: the registration and the subscription. */
struct slot {
    int side;
    enum slot_state state;
    struct sipreg *reg;
    struct blf *blf;
    char reg_uri[96];
    char aor[128];
    char cuser[48];
};

static struct {
    sf_agent *agent;
    struct sip *sip;
    struct sipsess_sock *sess_sock;
    struct sipsess *sess;
    struct udp_sock *probe[SIDES];
    struct tmr agent_tmr;
    struct tmr apply_tmr;
    struct tmr reap_tmr;
    void *reap[MAX_REAP];
    size_t nreap;
    struct slot slot[SIDES];
    int active; /* the side whose bundle is in force; -1 before the first registration */
    const char *app_url;
    const char *vpn;
    bool applying;
    bool initial;
    int to;
    uint32_t gen;
    bool in_drain;
} ph;

static sf_agent_storage storage;

/* ---- clocks and output -------------------------------------------------------------------------- */

static uint64_t clock_us(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The agent's clock: monotonic, like libre's timers. */
static uint64_t now_us(void) {
    return clock_us(CLOCK_MONOTONIC);
}

static const char *side_name(int s) {
    return s == SF_SIDE_PRIMARY ? "primary" : s == SF_SIDE_BACKUP ? "backup" : "none";
}

/* One line: the real-time clock (to set beside the registrars' own records), the monotonic clock, then
 * `event=...` and the fields. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    va_list ap;
    printf("t_us=%" PRIu64 " mono_us=%" PRIu64 " ", clock_us(CLOCK_REALTIME), now_us());
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void die(const char *what, int err) {
    say("event=fatal what=%s err=%d", what, err);
    exit(1);
}

/* Objects are released from a zero-delay timer, never from inside their own handlers. */
static void reap_handler(void *arg) {
    (void)arg;
    while (ph.nreap > 0) {
        mem_deref(ph.reap[--ph.nreap]);
    }
}

static void reap(void *obj) {
    if (obj == NULL) {
        return;
    }
    if (ph.nreap == MAX_REAP) {
        die("reap", ENOMEM);
    }
    ph.reap[ph.nreap++] = obj;
    tmr_start(&ph.reap_tmr, 0, reap_handler, NULL);
}

static uint32_t retry_after(const struct sip_msg *msg) {
    const struct sip_hdr *h = msg ? sip_msg_hdr(msg, SIP_HDR_RETRY_AFTER) : NULL;
    return h ? pl_u32(&h->val) : 0;
}

/* ---- the agent ---------------------------------------------------------------------------------- */

static void agent_drain(void);
static void start_apply(int to, uint32_t generation);

static void agent_command(uint8_t kind, uint8_t side, uint8_t flag, uint32_t generation, uint32_t retry_s) {
    sf_command c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.side = side;
    c.flag = flag;
    c.generation = generation;
    c.retry_after_s = retry_s;
    sf_status st = sf_agent_handle_command(ph.agent, now_us(), &c);
    if (st != SF_OK) {
        say("event=command_refused kind=%u status=%s", (unsigned)kind, sf_status_str(st));
    }
    agent_drain();
}

static void sa_from_sf(struct sa *out, const sf_addr *a) {
    uint32_t v4 = ((uint32_t)a->addr[0] << 24) | ((uint32_t)a->addr[1] << 16) | ((uint32_t)a->addr[2] << 8) |
                  (uint32_t)a->addr[3];
    sa_set_in(out, v4, a->port);
}

static void sf_from_sa(sf_addr *out, const struct sa *sa) {
    uint32_t v4 = sa_in(sa);
    memset(out, 0, sizeof *out);
    out->family = SF_AF_INET;
    out->addr[0] = (uint8_t)(v4 >> 24);
    out->addr[1] = (uint8_t)(v4 >> 16);
    out->addr[2] = (uint8_t)(v4 >> 8);
    out->addr[3] = (uint8_t)v4;
    out->port = sa_port(sa);
}

static void print_event(const sf_event *ev) {
    const char *name = sf_event_kind_name(ev->kind);
    switch (ev->kind) {
    case SF_EVENT_SWITCH:
        say("event=%s from=%s to=%s reason=%u generation=%" PRIu32, name, side_name(ev->side),
            side_name(ev->other), (unsigned)ev->reason, ev->generation);
        break;
    case SF_EVENT_APPLIED:
    case SF_EVENT_APPLY_FAILED:
        say("event=%s side=%s generation=%" PRIu32, name, side_name(ev->side), ev->generation);
        break;
    case SF_EVENT_HELD:
        say("event=%s to=%s reason=%u", name, side_name(ev->other), (unsigned)ev->reason);
        break;
    case SF_EVENT_REPLY:
        say("event=%s side=%s attempt=%u status=%u rtt_us=%" PRIu64, name, side_name(ev->side),
            (unsigned)ev->attempt, (unsigned)ev->status, ev->rtt_us);
        break;
    case SF_EVENT_PROBE_SENT:
    case SF_EVENT_ATTEMPT_TIMED_OUT:
        say("event=%s side=%s attempt=%u", name, side_name(ev->side), (unsigned)ev->attempt);
        break;
    case SF_EVENT_SERVER_DOWN:
        say("event=%s side=%s reason=%u status=%u", name, side_name(ev->side), (unsigned)ev->reason,
            (unsigned)ev->status);
        break;
    case SF_EVENT_CYCLE_RESULT:
        say("event=%s side=%s alive=%u", name, side_name(ev->side), (unsigned)ev->detail);
        break;
    default:
        say("event=%s side=%s", name, side_name(ev->side));
        break;
    }
}

static void agent_timer(void *arg);

/* The run loop's output half: transmits, then events, until both are empty; then the timer. */
static void agent_drain(void) {
    if (ph.in_drain) {
        return; /* the outer drain goes round again */
    }
    ph.in_drain = true;
    bool more = true;
    while (more) {
        more = false;
        uint8_t buf[1472];
        sf_transmit tx;
        while (sf_agent_poll_transmit(ph.agent, now_us(), buf, sizeof buf, &tx) == SF_OK) {
            struct mbuf *mb = mbuf_alloc(tx.len);
            struct sa dst;
            if (mb == NULL) {
                die("mbuf_alloc", ENOMEM);
            }
            (void)mbuf_write_mem(mb, buf, tx.len);
            mb->pos = 0;
            sa_from_sf(&dst, &tx.destination);
            int err = udp_send(ph.probe[tx.server], &dst, mb);
            mem_deref(mb);
            if (err) {
                (void)sf_agent_handle_refused(ph.agent, now_us(), tx.server);
            }
            more = true;
        }
        sf_event ev;
        while (sf_agent_poll_event(ph.agent, &ev) == SF_OK) {
            print_event(&ev);
            if (ev.kind == SF_EVENT_SWITCH) {
                start_apply(ev.other, ev.generation);
            }
            more = true;
        }
    }
    ph.in_drain = false;
    uint64_t wake;
    if (sf_agent_poll_timeout(ph.agent, &wake) == SF_OK) {
        uint64_t now = now_us();
        uint64_t delay_ms = wake > now ? (wake - now + 999u) / 1000u : 0;
        tmr_start(&ph.agent_tmr, delay_ms, agent_timer, NULL);
    } else {
        tmr_cancel(&ph.agent_tmr);
    }
}

static void agent_timer(void *arg) {
    (void)arg;
    (void)sf_agent_handle_timeout(ph.agent, now_us());
    agent_drain();
}

static void probe_recv(const struct sa *src, struct mbuf *mb, void *arg) {
    (void)arg;
    sf_addr from;
    sf_from_sa(&from, src);
    (void)sf_agent_handle_datagram(ph.agent, now_us(), &from, mbuf_buf(mb), mbuf_get_left(mb));
    agent_drain();
}

/* ---- digest credentials --------------------------------------------------------------------------- */

static int auth_handler(char **username, char **password, const char *realm, void *arg) {
    (void)realm;
    (void)arg;
    if (conf.password == NULL) {
        return EAUTH;
    }
    int err = str_dup(username, conf.user);
    err |= str_dup(password, conf.password);
    return err;
}

/* ---- the BLF subscription ------------------------------------------------------------------------- */

static void blf_result(struct blf *b, uint16_t status, const struct sip_msg *msg);
static int blf_request(struct blf *b);

static void blf_destructor(void *arg) {
    struct blf *b = arg;
    tmr_cancel(&b->tmr);
    mem_deref(b->dlg);
    mem_deref(b->auth);
}

static int blf_send_handler(enum sip_transp tp, const struct sa *src, const struct sa *dst, struct mbuf *mb,
                            void *arg) {
    (void)dst;
    (void)arg;
    return mbuf_printf(mb, "Contact: <sip:%s@%J%s>\r\n", conf.user, src, sip_transp_param(tp));
}

static void blf_refresh(void *arg) {
    struct blf *b = arg;
    b->auth_tries = 0;
    if (blf_request(b) != 0) {
        blf_result(b, 0, NULL);
    }
}

static void blf_resp(int err, const struct sip_msg *msg, void *arg) {
    struct blf *b = arg;
    uint16_t status = (err || msg == NULL) ? 0 : msg->scode;
    if (status >= 100 && status < 200) {
        return;
    }
    if (b->closing) {
        if (status >= 200 && status < 300) {
            say("event=unsubscribed side=%s status=%u", side_name(b->side), (unsigned)status);
        }
        reap(b);
        return;
    }
    if (status >= 200 && status < 300) {
        if (!sip_dialog_established(b->dlg) && sip_dialog_create(b->dlg, msg) != 0) {
            blf_result(b, 0, msg);
            return;
        }
        uint32_t wait = pl_isset(&msg->expires) ? pl_u32(&msg->expires) : b->expires;
        if (wait == 0) {
            wait = b->expires;
        }
        b->subscribed = true;
        b->auth_tries = 0;
        tmr_start(&b->tmr, (uint64_t)wait * 900u, blf_refresh, b);
        blf_result(b, status, msg);
        return;
    }
    if ((status == 401 || status == 407) && b->auth_tries++ < 2 && sip_auth_authenticate(b->auth, msg) == 0 &&
        blf_request(b) == 0) {
        return;
    }
    if (status == 423) {
        const struct sip_hdr *minexp = sip_msg_hdr(msg, SIP_HDR_MIN_EXPIRES);
        uint32_t min = minexp ? pl_u32(&minexp->val) : 0;
        if (min > b->expires) {
            b->expires = min;
            if (blf_request(b) == 0) {
                return;
            }
        }
    }
    blf_result(b, status, msg);
}

static int blf_request(struct blf *b) {
    return sip_drequestf(&b->req, ph.sip, true, "SUBSCRIBE", b->dlg, 0, b->auth, blf_send_handler, blf_resp, b,
                         "Event: dialog\r\n"
                         "Accept: application/dialog-info+xml\r\n"
                         "Expires: %u\r\n"
                         "Content-Length: 0\r\n"
                         "\r\n",
                         b->closing ? 0u : b->expires);
}

static struct blf *blf_start(struct slot *s) {
    struct blf *b = mem_zalloc(sizeof *b, blf_destructor);
    if (b == NULL) {
        return NULL;
    }
    b->side = s->side;
    b->expires = conf.expires;
    /* The phone watches its own extension's dialogs (a real BLF key names another user). */
    /* Sent through the side's registrar as the outbound proxy (libre makes it a loose route). */
    const char *routev[1] = {s->reg_uri};
    int err = sip_dialog_alloc(&b->dlg, s->aor, s->aor, NULL, s->aor, routev, 1);
    err = err ? err : sip_auth_alloc(&b->auth, auth_handler, NULL, false);
    err = err ? err : blf_request(b);
    if (err) {
        say("event=subscribe_failed side=%s status=0 err=%d", side_name(s->side), err);
        mem_deref(b);
        return NULL;
    }
    return b;
}

/* Ends the subscription: SUBSCRIBE with Expires: 0 when it was established, else just forgets it. */
static void blf_close(struct blf *b) {
    if (b == NULL) {
        return;
    }
    tmr_cancel(&b->tmr);
    if (b->closing) {
        return;
    }
    b->closing = true;
    if (b->req != NULL) {
        return; /* its answer ends it */
    }
    if (!b->subscribed || blf_request(b) != 0) {
        reap(b);
    }
}

/* ---- registration --------------------------------------------------------------------------------- */

static void apply_subscribe(struct slot *s);
static void apply_finish(void);
static void apply_fail(const char *step, uint16_t status);

static void reg_resp(int err, const struct sip_msg *msg, void *arg) {
    struct slot *s = arg;
    uint16_t status = (err || msg == NULL) ? 0 : msg->scode;
    if (status >= 200 && status < 300) {
        if (s->state == SLOT_REGISTERING) {
            say("event=registered side=%s status=%u expires=%u", side_name(s->side), (unsigned)status,
                (unsigned)sipreg_proxy_expires(s->reg));
            s->state = SLOT_SUBSCRIBING;
            apply_subscribe(s);
        } else {
            say("event=register_refreshed side=%s status=%u", side_name(s->side), (unsigned)status);
        }
        return;
    }
    uint32_t ra = retry_after(msg);
    say("event=register_failed side=%s status=%u retry_after=%u err=%d", side_name(s->side), (unsigned)status,
        (unsigned)ra, err);
    if (s->state == SLOT_REGISTERING) {
        if (ph.applying && !ph.initial && s->side == ph.to) {
            apply_fail("register", status);
        }
        /* The first registration: libre tries again by itself. */
        return;
    }
    if (s->side == ph.active) {
        if (status == 503 && ra > 0) {
            agent_command(SF_COMMAND_MAINTENANCE, (uint8_t)s->side, 0, 0, ra);
        } else {
            agent_command(SF_COMMAND_TRANSACTION_FAILED, (uint8_t)s->side, 0, 0, 0);
        }
    }
}

/* Each registration binds its own Contact (`user-N`, as baresip makes its contact users unique): a
 * REGISTER abandoned by an apply that timed out, answered late, is un-registered by libre, and that
 * must not remove a newer binding of the phone on the same registrar. */
static int slot_register(struct slot *s) {
    static unsigned registrations;
    s->state = SLOT_REGISTERING;
    (void)re_snprintf(s->cuser, sizeof s->cuser, "%s-%u", conf.user, ++registrations);
    say("event=register_sent side=%s registrar=%s contact_user=%s", side_name(s->side), conf.addr[s->side],
        s->cuser);
    return sipreg_register(&s->reg, ph.sip, s->reg_uri, s->aor, NULL, s->aor, conf.expires, s->cuser, NULL, 0, 0,
                           auth_handler, NULL, false, reg_resp, s, NULL, NULL);
}

/* Drops what the phone holds on a side: the binding and the subscription go with expiry 0. */
static void slot_drop(struct slot *s) {
    reap(s->reg); /* libre's sipreg un-registers when released while registered */
    s->reg = NULL;
    blf_close(s->blf);
    s->blf = NULL;
    s->state = SLOT_IDLE;
}

static void blf_result(struct blf *b, uint16_t status, const struct sip_msg *msg) {
    struct slot *s = &ph.slot[b->side];
    bool ok = status >= 200 && status < 300;
    if (ok) {
        say("event=subscribed side=%s status=%u", side_name(b->side), (unsigned)status);
        if (s->state == SLOT_SUBSCRIBING && s->blf == b) {
            s->state = SLOT_READY;
            if (ph.applying && s->side == ph.to) {
                apply_finish();
            }
        }
        return;
    }
    uint32_t ra = retry_after(msg);
    say("event=subscribe_failed side=%s status=%u retry_after=%u", side_name(b->side), (unsigned)status,
        (unsigned)ra);
    if (s->blf != b) {
        reap(b);
        return;
    }
    if (s->state == SLOT_SUBSCRIBING && ph.applying && s->side == ph.to) {
        if (ph.initial) {
            s->blf = NULL;
            reap(b);
            return;
        }
        apply_fail("subscribe", status);
        return;
    }
    if (s->side == ph.active) {
        /* The refresh failed: try again in a while, and tell the agent. */
        b->auth_tries = 0;
        tmr_start(&b->tmr, 5000, blf_refresh, b);
        if (status == 503 && ra > 0) {
            agent_command(SF_COMMAND_MAINTENANCE, (uint8_t)s->side, 0, 0, ra);
        } else {
            agent_command(SF_COMMAND_TRANSACTION_FAILED, (uint8_t)s->side, 0, 0, 0);
        }
    }
}

/* ---- applying a bundle ---------------------------------------------------------------------------- */

static void apply_timeout(void *arg) {
    (void)arg;
    if (ph.applying && !ph.initial) {
        apply_fail("timeout", 0);
    }
}

static void start_apply(int to, uint32_t generation) {
    if (ph.applying && !ph.initial) {
        /* A newer switch replaces one still being applied. */
        slot_drop(&ph.slot[ph.to]);
    }
    if (to == ph.active) {
        /* Already in force (a switch back before the old side was left): nothing to move. */
        say("event=ack result=applied generation=%" PRIu32 " side=%s note=already_in_force", generation,
            side_name(to));
        agent_command(SF_COMMAND_APPLIED, 0, 0, generation, 0);
        return;
    }
    ph.applying = true;
    ph.initial = false;
    ph.to = to;
    ph.gen = generation;
    tmr_start(&ph.apply_tmr, conf.apply_timeout_ms, apply_timeout, NULL);
    struct slot *s = &ph.slot[to];
    slot_drop(s);
    if (slot_register(s) != 0) {
        apply_fail("register", 0);
    }
}

static void apply_subscribe(struct slot *s) {
    blf_close(s->blf);
    s->blf = blf_start(s);
    if (s->blf == NULL) {
        if (ph.applying && !ph.initial && s->side == ph.to) {
            apply_fail("subscribe", 0);
        }
    }
}

static void apply_finish(void) {
    int to = ph.to;
    ph.app_url = conf.app_url[to];
    ph.vpn = conf.vpn[to];
    say("event=bundle side=%s app_url=%s vpn=%s", side_name(to), ph.app_url, ph.vpn);
    /* Leave every other side: the one in force until now, and one whose first registration was
     * still under way when the agent switched away from it. */
    for (int side = 0; side < SIDES; side++) {
        if (side != to && ph.slot[side].state != SLOT_IDLE) {
            slot_drop(&ph.slot[side]);
            say("event=left side=%s", side_name(side));
        }
    }
    ph.active = to;
    ph.applying = false;
    tmr_cancel(&ph.apply_tmr);
    if (ph.initial) {
        ph.initial = false;
        say("event=ready_on side=%s", side_name(to));
        return;
    }
    say("event=ack result=applied generation=%" PRIu32 " side=%s", ph.gen, side_name(to));
    agent_command(SF_COMMAND_APPLIED, 0, 0, ph.gen, 0);
}

static void apply_fail(const char *step, uint16_t status) {
    int to = ph.to;
    /* Whatever the new side accepted goes again: the previous bundle stays whole. */
    slot_drop(&ph.slot[to]);
    ph.applying = false;
    tmr_cancel(&ph.apply_tmr);
    say("event=ack result=failed generation=%" PRIu32 " side=%s step=%s status=%u kept=%s", ph.gen, side_name(to),
        step, (unsigned)status, side_name(ph.active));
    agent_command(SF_COMMAND_APPLY_FAILED, 0, 0, ph.gen, 0);
}

/* ---- calls ---------------------------------------------------------------------------------------- */

static int offer_handler(struct mbuf **descp, const struct sip_msg *msg, void *arg) {
    (void)descp;
    (void)msg;
    (void)arg;
    return 0;
}

static int answer_handler(const struct sip_msg *msg, void *arg) {
    (void)msg;
    (void)arg;
    return 0;
}

static void estab_handler(const struct sip_msg *msg, void *arg) {
    (void)msg;
    (void)arg;
    say("event=call state=established");
}

static void close_handler(int err, const struct sip_msg *msg, void *arg) {
    (void)msg;
    (void)arg;
    say("event=call state=closed err=%d", err);
    reap(ph.sess);
    ph.sess = NULL;
    agent_command(SF_COMMAND_IN_CALL, 0, 0, 0, 0);
}

static void conn_handler(const struct sip_msg *msg, void *arg) {
    (void)arg;
    if (ph.sess != NULL) {
        (void)sip_treply(NULL, ph.sip, msg, 486, "Busy Here");
        return;
    }
    struct mbuf *sdp = mbuf_alloc(256);
    if (sdp == NULL) {
        (void)sip_treply(NULL, ph.sip, msg, 500, "Server Internal Error");
        return;
    }
    (void)mbuf_printf(sdp,
                      "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                      "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n");
    sdp->pos = 0;
    say("event=call state=offered");
    int err = sipsess_accept(&ph.sess, ph.sess_sock, msg, 200, "OK", conf.user, "application/sdp", sdp, NULL, NULL,
                             false, offer_handler, answer_handler, estab_handler, NULL, NULL, close_handler, NULL,
                             "");
    mem_deref(sdp);
    if (err) {
        (void)sip_treply(NULL, ph.sip, msg, 500, "Server Internal Error");
        return;
    }
    say("event=call state=answered");
    agent_command(SF_COMMAND_IN_CALL, 0, 1, 0, 0);
}

/* NOTIFYs of the BLF subscription: acknowledged (a phone would light the key). */
static bool notify_handler(const struct sip_msg *msg, void *arg) {
    (void)arg;
    if (pl_strcmp(&msg->met, "NOTIFY") != 0) {
        return false;
    }
    (void)sip_treply(NULL, ph.sip, msg, 200, "OK");
    return true;
}

/* ---- start-up --------------------------------------------------------------------------------------- */

static void sip_exit(void *arg) {
    (void)arg;
    re_cancel();
}

static void signal_handler(int sig) {
    say("event=exit signal=%d", sig);
    re_cancel();
}

static const char *arg_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "phone: %s needs a value\n", argv[*i]);
        exit(2);
    }
    return argv[++*i];
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--primary") == 0) {
            conf.addr[0] = arg_value(argc, argv, &i);
        } else if (strcmp(a, "--backup") == 0) {
            conf.addr[1] = arg_value(argc, argv, &i);
        } else if (strcmp(a, "--sip-port") == 0) {
            conf.sip_port = (uint16_t)atoi(arg_value(argc, argv, &i));
        } else if (strcmp(a, "--user") == 0) {
            conf.user = arg_value(argc, argv, &i);
        } else if (strcmp(a, "--password") == 0) {
            conf.password = arg_value(argc, argv, &i);
        } else if (strcmp(a, "--expires") == 0) {
            conf.expires = (uint32_t)atoi(arg_value(argc, argv, &i));
        } else if (strcmp(a, "--interval-ms") == 0) {
            conf.interval_ms = (uint32_t)atoi(arg_value(argc, argv, &i));
        } else if (strcmp(a, "--apply-timeout-ms") == 0) {
            conf.apply_timeout_ms = (uint32_t)atoi(arg_value(argc, argv, &i));
        } else if (strcmp(a, "--app-primary") == 0) {
            conf.app_url[0] = arg_value(argc, argv, &i);
        } else if (strcmp(a, "--app-backup") == 0) {
            conf.app_url[1] = arg_value(argc, argv, &i);
        } else if (strcmp(a, "--vpn-primary") == 0) {
            conf.vpn[0] = arg_value(argc, argv, &i);
        } else if (strcmp(a, "--vpn-backup") == 0) {
            conf.vpn[1] = arg_value(argc, argv, &i);
        } else {
            fprintf(stderr, "phone: unknown argument %s\n", a);
            exit(2);
        }
    }
    if (conf.addr[0] == NULL || conf.addr[1] == NULL) {
        fprintf(stderr, "phone: --primary and --backup are required\n");
        exit(2);
    }
}

static void setup_slot(int side) {
    struct slot *s = &ph.slot[side];
    struct sa sa;
    char host[64];
    s->side = side;
    if (sa_decode(&sa, conf.addr[side], strlen(conf.addr[side])) != 0) {
        die("registrar address", EINVAL);
    }
    (void)re_snprintf(host, sizeof host, "%j", &sa);
    (void)re_snprintf(s->reg_uri, sizeof s->reg_uri, "sip:%J", &sa);
    (void)re_snprintf(s->aor, sizeof s->aor, "sip:%s@%s", conf.user, host);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    ph.active = -1;
    int err = libre_init();
    if (err) {
        die("libre_init", err);
    }
    setup_slot(SF_SIDE_PRIMARY);
    setup_slot(SF_SIDE_BACKUP);

    /* The SIP stack on its own socket: REGISTER, SUBSCRIBE, calls. */
    struct sa laddr;
    sa_set_str(&laddr, "127.0.0.1", conf.sip_port);
    err = sip_alloc(&ph.sip, NULL, 32, 32, 32, "sip-failover reference phone", sip_exit, NULL);
    err = err ? err : sip_transp_add(ph.sip, SIP_TRANSP_UDP, &laddr);
    err = err ? err : sipsess_listen(&ph.sess_sock, ph.sip, 32, conn_handler, NULL);
    if (err) {
        die("sip stack", err);
    }
    static struct sip_lsnr *lsnr;
    err = sip_listen(&lsnr, ph.sip, true, notify_handler, NULL);
    if (err) {
        die("sip_listen", err);
    }
    struct sa sip_laddr;
    (void)sip_transp_laddr(ph.sip, &sip_laddr, SIP_TRANSP_UDP, NULL);

    /* The agent's probe sockets, one per side, in the same loop. */
    sf_config cfg;
    sf_config_init(&cfg);
    sf_server *servers[SIDES] = {&cfg.primary, &cfg.backup};
    for (int side = 0; side < SIDES; side++) {
        struct sa any, local;
        sa_set_str(&any, "127.0.0.1", 0);
        err = udp_listen(&ph.probe[side], &any, probe_recv, NULL);
        err = err ? err : udp_local_get(ph.probe[side], &local);
        if (err) {
            die("probe socket", err);
        }
        if (sf_addr_parse(conf.addr[side], &servers[side]->next_hop) != SF_OK) {
            die("server address", EINVAL);
        }
        sf_from_sa(&servers[side]->local, &local);
    }
    cfg.backup_enabled = 1;
    cfg.interval_ms = conf.interval_ms;
    cfg.user = conf.user;
    uint64_t seed = clock_us(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32);
    sf_status st = sf_agent_init(&storage, sizeof storage, &cfg, now_us(), seed, &ph.agent);
    if (st != SF_OK) {
        say("event=fatal what=sf_agent_init status=%s", sf_status_str(st));
        return 1;
    }
    char sip_text[64];
    (void)re_snprintf(sip_text, sizeof sip_text, "%J", &sip_laddr);
    say("event=ready sip=%s user=%s primary=%s backup=%s interval_ms=%u expires=%u", sip_text, conf.user,
        conf.addr[0], conf.addr[1], (unsigned)conf.interval_ms, (unsigned)conf.expires);

    /* The first registration, on the primary, where the agent starts. */
    ph.applying = true;
    ph.initial = true;
    ph.to = SF_SIDE_PRIMARY;
    if (slot_register(&ph.slot[SF_SIDE_PRIMARY]) != 0) {
        die("register", EINVAL);
    }
    agent_drain();

    err = re_main(signal_handler);

    sf_state state;
    if (sf_agent_state(ph.agent, &state) == SF_OK) {
        say("event=state active=%s generation=%" PRIu32 " in_call=%u", side_name(state.active), state.generation,
            (unsigned)state.in_call);
    }
    return err ? 1 : 0;
}
