/* parley.h - libparley, the Parley XMPP client library (the one public header).
 *
 * One `parley` handle is one account's connection to its server. The library never
 * blocks except in parley_run_until() and in host name resolution (getaddrinfo), and
 * keeps no global state: every handle is independent.
 *
 *   parley_options o;
 *   parley_options_init(&o);
 *   o.jid = "alice@example.org"; o.password = "...";      (or o.password_file)
 *   o.on_event = my_event_fn; o.userdata = me;
 *   parley *p = parley_new(&o, &err);
 *   parley_connect(p);
 *   for (;;) {                    (or: parley_run_until(p, done_fn, ud, timeout_ms))
 *       struct pollfd pfd = { parley_fd(p), parley_poll_events(p), 0 };
 *       poll(&pfd, pfd.fd >= 0, parley_timeout_ms(p));
 *       parley_process(p, 0);     (events are delivered from inside this call)
 *   }
 *   parley_free(p);
 *
 * Security: the connection is always TLS (STARTTLS, or direct TLS per XEP-0368), at
 * least TLS 1.2, with the server's chain verified against the system store or a CA file
 * and its certificate checked for the XMPP domain (RFC 6125). SASL prefers
 * SCRAM-SHA-256-PLUS, then SCRAM-SHA-1-PLUS (channel binding tls-exporter on TLS 1.3 or
 * tls-server-end-point), SCRAM-SHA-256, SCRAM-SHA-1, and PLAIN last (only ever inside
 * the verified TLS channel; can be disabled).
 *
 * Threads: a handle is not thread-safe. Use each handle from one thread at a time (any
 * thread); different handles may be used concurrently from different threads. Callbacks
 * run on the thread that called parley_process()/parley_run_until(). Inside a callback
 * you may call any function on the same handle except parley_free().
 *
 * Strings passed in are copied; strings handed to callbacks are valid only during the
 * callback. Functions returning parley_error return PARLEY_OK (0) on success. */
#ifndef PARLEY_H
#define PARLEY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct parley parley;

/* Error codes. The numbers 1..7 are also the exit codes of the `parley` command. */
typedef enum {
    PARLEY_OK = 0,
    PARLEY_ERR_INVALID = 1,     /* bad argument or option (caller's mistake) */
    PARLEY_ERR_UNREACHABLE = 2, /* name resolution or TCP connect failed, connection lost */
    PARLEY_ERR_CERTIFICATE = 3, /* server certificate chain or XMPP domain not verified */
    PARLEY_ERR_AUTH = 4,        /* SASL authentication failed (credentials, or server proof) */
    PARLEY_ERR_POLICY = 5,      /* refused by policy: ours (no TLS, TLS < 1.2, no acceptable
                                   mechanism) or the server's (policy-violation, ...) */
    PARLEY_ERR_TIMEOUT = 6,     /* no answer in time (connect, handshake, keep-alive, IQ) */
    PARLEY_ERR_PROTOCOL = 7,    /* any other stream or stanza level error from the server */
    PARLEY_ERR_STATE = 8,       /* operation needs an established session */
    PARLEY_ERR_CLOSED = 9,      /* the connection was closed by parley_disconnect() */
} parley_error;

/* A static English description of an error code. */
const char *parley_strerror(parley_error err);

typedef enum {
    PARLEY_STATE_OFFLINE = 0,  /* not connected, no reconnect pending */
    PARLEY_STATE_CONNECTING,   /* TCP, TLS, authentication or binding in progress */
    PARLEY_STATE_ONLINE,       /* session established */
    PARLEY_STATE_WAITING,      /* disconnected, reconnect scheduled (back-off) */
} parley_state;

/* ------------------------------------------------------------------ stanzas */

/* A received stanza, read-only, valid during the callback it is passed to. Lets later
 * extensions (OMEMO, MUC, MAM, carbons...) read any element without a new API. */
typedef struct parley_stanza parley_stanza;

const char *parley_stanza_name(const parley_stanza *s);  /* "message", "iq", ... */
const char *parley_stanza_ns(const parley_stanza *s);    /* namespace URI */
const char *parley_stanza_attr(const parley_stanza *s, const char *name); /* or NULL */
/* First child element with namespace ns (NULL: any) and name (NULL: any), or NULL. */
const parley_stanza *parley_stanza_child(const parley_stanza *s, const char *ns,
                                         const char *name);
/* Next sibling element with the same filters, or NULL. */
const parley_stanza *parley_stanza_next(const parley_stanza *s, const char *ns,
                                        const char *name);
/* Text content (freshly allocated, caller frees; "" if none). */
char *parley_stanza_text(const parley_stanza *s);
/* The element serialized as XML (freshly allocated, caller frees). */
char *parley_stanza_xml(const parley_stanza *s);

/* ------------------------------------------------------------------ events */

typedef enum {
    PARLEY_EV_CONNECTED = 1, /* session established: bound JID known, roster loaded */
    PARLEY_EV_DISCONNECTED,  /* session or attempt ended; error says why; retry_in_ms >= 0
                                when a reconnect is scheduled, -1 when not */
    PARLEY_EV_MESSAGE,       /* a message with a body, or a message error (msg_type "error") */
    PARLEY_EV_PRESENCE,      /* a contact's availability (pres_type NULL or "unavailable") */
    PARLEY_EV_SUBSCRIPTION,  /* pres_type "subscribe", "subscribed", "unsubscribe",
                                "unsubscribed": answer with parley_subscription() */
    PARLEY_EV_ROSTER,        /* a roster item was added, changed (roster_removed 0) or
                                removed (roster_removed 1), incl. the initial load */
    PARLEY_EV_SENT,          /* a message given to parley_send_message left: id, to and
                                encrypted (1: end-to-end encrypted). A message that could
                                not be sent is a MESSAGE event of msg_type "error" with
                                the same id instead. */
    PARLEY_EV_SECURITY,      /* an end-to-end encryption notice for the user (error_text):
                                an identity key changed, a device was added, a bundle was
                                refused, a replayed message was ignored, keys could not be
                                published... from: the account concerned */
    PARLEY_EV_POLICY,        /* the admin policy arrived or changed: parley_policy_get */
    PARLEY_EV_RESENT,        /* after a lost connection, on a new session (the old one could
                                not be resumed): a message the server had not acknowledged
                                was sent again (id, to; error_text says why). The recipient
                                may get it twice; it carries the same origin-id (XEP-0359),
                                so clients drop the copy. */
    /* group chat (XEP-0045) and the message archive (XEP-0313): see "group chat" below */
    PARLEY_EV_ROOM_JOINED = 32, /* we are in room (nick, role, affiliation) */
    PARLEY_EV_ROOM_LEFT,     /* we are out of room: room_change says why (left, kicked,
                                banned, ..., DISCONNECTED: rejoined after the reconnect) */
    PARLEY_EV_ROOM_MESSAGE,  /* a room message (msg_type "groupchat"), or a private one
                                through the room ("chat"); never end-to-end encrypted */
    PARLEY_EV_ROOM_PRESENCE, /* an occupant (nick) entered, changed or left (room_change) */
    PARLEY_EV_ROOM_SUBJECT,  /* the room's subject (subject; nick: who set it, or NULL) */
    PARLEY_EV_ROOM_ERROR,    /* the room refused something: a join (room_change
                                PARLEY_ROOM_REFUSED: we are not in it), a message, a
                                moderation request...; error and error_text say what */
    PARLEY_EV_ROOM_INVITE,   /* an invitation to room from `from` (reason, password) */
    PARLEY_EV_ARCHIVE_DONE,  /* an archive fetch ended (room: the room's archive, NULL: the
                                account's); count messages delivered; error if it failed */
} parley_event_type;

typedef struct parley_event {
    parley_event_type type;
    const char *from;          /* sender's full JID (or bare/domain) */
    const char *to;
    const char *id;            /* stanza id, or NULL */
    /* MESSAGE */
    const char *msg_type;      /* "chat", "normal", "headline", "groupchat", "error" */
    const char *body;
    const char *thread;
    int encrypted;             /* client-to-client (OMEMO) encrypted */
    const char *e2e_error;     /* MESSAGE: why there is no body: an encrypted message that
                                  could not be decrypted, or a message the policy refuses
                                  (never a silently dropped message) */
    unsigned long e2e_device;  /* MESSAGE, SECURITY: the sender's OMEMO device id (or 0) */
    int e2e_trust;             /* MESSAGE: that device's trust: PARLEY_TRUST_* */
    int e2e_key_changed;       /* MESSAGE, SECURITY: its identity key changed */
    /* PRESENCE / SUBSCRIPTION */
    const char *pres_type;     /* NULL = available */
    const char *show;          /* NULL, "away", "chat", "dnd", "xa" */
    const char *status;
    int priority;
    /* ROSTER */
    const char *roster_jid;
    const char *roster_name;
    const char *subscription;  /* "none", "to", "from", "both" */
    int roster_ask;            /* our subscription request is pending */
    int roster_removed;
    /* MESSAGE error, DISCONNECTED */
    parley_error error;
    const char *error_text;    /* e.g. "policy-violation: plaintext chat is not allowed" */
    int retry_in_ms;
    /* the whole stanza (NULL for CONNECTED/DISCONNECTED) */
    const parley_stanza *stanza;
    /* ---- group chat, archive and carbons (0/NULL for the other events) */
    const char *room;          /* ROOM_*: the room's bare JID; ARCHIVE_DONE: its archive */
    const char *nick;          /* ROOM_*: the occupant concerned (ours for JOINED/LEFT;
                                  NULL: the room itself) */
    const char *real_jid;      /* ROOM_PRESENCE: the occupant's real JID, when the room
                                  shows it; ROOM_INVITE: the invitee */
    const char *role;          /* ROOM_JOINED/PRESENCE: "moderator", "participant",
                                  "visitor", "none" */
    const char *affiliation;   /* "owner", "admin", "member", "outcast", "none" */
    const char *subject;       /* ROOM_SUBJECT */
    const char *new_nick;      /* ROOM_PRESENCE with room_change PARLEY_ROOM_NICK */
    const char *actor;         /* ROOM_LEFT/PRESENCE: the moderator who kicked or banned */
    const char *reason;        /* kick, ban, destruction, invitation */
    const char *password;      /* ROOM_INVITE: the room's password, if the inviter sent it */
    int room_change;           /* ROOM_*: a parley_room_change */
    int is_self;               /* ROOM_*: about our own occupant (a message: our echo) */
    int created;               /* ROOM_JOINED: the join created the room */
    /* MESSAGE and ROOM_MESSAGE */
    const char *stanza_id;     /* the server's id of the message (XEP-0359, the id in the
                                  archive: the same live, as a carbon and from the archive) */
    long long timestamp_ms;    /* when the server took it (Unix ms) for history and archive
                                  results; 0: just now */
    int archived;              /* 1: from the archive or a room's history, not live */
    int carbon;                /* PARLEY_CARBON_*: a copy of a message another device of
                                  this account sent or received (XEP-0280) */
    int outgoing;              /* 1: this account sent it (from another device, or earlier) */
    int count;                 /* ARCHIVE_DONE: messages delivered */
} parley_event;

/* room_change: what happened to an occupant (ROOM_PRESENCE) or to us (ROOM_LEFT/ERROR). */
typedef enum {
    PARLEY_ROOM_ENTERED = 1, /* an occupant came in */
    PARLEY_ROOM_CHANGED,     /* its presence, role or affiliation changed */
    PARLEY_ROOM_NICK,        /* it took new_nick */
    PARLEY_ROOM_EXITED,      /* it left (or we did: parley_room_leave) */
    PARLEY_ROOM_KICKED,      /* removed by a moderator (status 307) */
    PARLEY_ROOM_BANNED,      /* banned (301) */
    PARLEY_ROOM_REMOVED,     /* no longer a member of a members-only room (321, 322) */
    PARLEY_ROOM_DESTROYED,   /* the room was destroyed (reason) */
    PARLEY_ROOM_SHUTDOWN,    /* the service went away (332), or an error removed us (333) */
    PARLEY_ROOM_DISCONNECTED, /* our connection was lost: rejoined after the reconnect */
    PARLEY_ROOM_REFUSED,     /* ROOM_ERROR: the join was refused (wrong password, ...) */
} parley_room_change;

/* carbon: which copy of a message another device of this account handled. */
enum {
    PARLEY_CARBON_NONE = 0,
    PARLEY_CARBON_RECEIVED = 1, /* received by another device (from: the sender) */
    PARLEY_CARBON_SENT = 2,     /* sent by another device (to: the recipient) */
};

typedef void (*parley_event_fn)(parley *p, const parley_event *ev, void *userdata);

/* Generic stanza hook: sees every stanza received on a bound session before the library
 * handles it. Return 1 if the hook consumed it (the library then does nothing more with
 * it, and for an IQ get/set the hook must send the answer), 0 to let it pass. */
typedef int (*parley_stanza_fn)(parley *p, const parley_stanza *s, void *userdata);

/* Result of an IQ: result is the type="result" or type="error" answer (NULL on time-out
 * or disconnect); err is PARLEY_OK for a result, PARLEY_ERR_PROTOCOL/POLICY for an
 * error answer, PARLEY_ERR_TIMEOUT, or PARLEY_ERR_UNREACHABLE if the session ended. */
typedef void (*parley_iq_fn)(parley *p, const parley_stanza *result, parley_error err,
                             void *userdata);

/* Diagnostic log lines (never secrets, never message bodies). level: 0 debug .. 3 error */
typedef void (*parley_log_fn)(int level, const char *line, void *userdata);

/* ------------------------------------------------------------------ options */

typedef struct parley_options {
    const char *jid;            /* account "user@domain[/resource]" (required) */
    const char *password;       /* or: */
    const char *password_file;  /* first line of this file is the password */
    const char *ca_file;        /* PEM CA bundle; NULL: the system trust store */
    const char *server;         /* "host:port[,host:port...]" ("[v6]:port" ok); NULL:
                                   the JID's domain on 5222 (5223 with direct_tls) */
    int direct_tls;             /* 1: XEP-0368 TLS from the first byte; 0: STARTTLS */
    int allow_plain;            /* permit SASL PLAIN inside TLS (default 1) */
    int initial_presence;       /* send available presence when online (default 1) */
    int priority;               /* of that presence (default 0) */
    int fetch_roster;           /* fetch the roster before CONNECTED (default 1) */
    int connect_timeout_ms;     /* whole sign-in per server address (default 15000) */
    int ping_interval_ms;       /* XEP-0199 ping after this much silence (default 60000;
                                   0 disables keep-alive) */
    int ping_timeout_ms;        /* no answer within this: connection dead (default 20000) */
    int reconnect;              /* reconnect after a lost session (default 1) */
    int reconnect_min_ms;       /* back-off base (default 1000) */
    int reconnect_max_ms;       /* back-off cap (default 60000) */
    int reconnect_max_attempts; /* 0 = unlimited (default) */
    size_t max_stanza;          /* largest stanza accepted (default 1 MiB) */
    /* End-to-end encryption (OMEMO, urn:xmpp:omemo:2), used as the admin policy says */
    int e2e;                    /* 0: no OMEMO at all, whatever the policy (default 1) */
    const char *e2e_store;      /* SQLCipher file for this device's keys and sessions;
                                   NULL: memory only (a new device every session; it stays
                                   listed so that its messages remain decryptable) */
    const unsigned char *e2e_store_key; /* its 32-byte raw key, or: */
    const char *e2e_store_passphrase;   /* a passphrase (PBKDF2) */
    const char *e2e_label;      /* device label published with the device list ("Parley") */
    int e2e_plain_default;      /* e2e_plain when the server has no policy (default 1) */
    parley_event_fn on_event;
    parley_log_fn on_log;
    void *userdata;             /* passed to on_event and on_log */
    /* ---- carbons and the archive */
    int carbons;                /* XEP-0280: ask for copies of what the account's other
                                   devices send and receive (default 1) */
    int archive_sync;           /* XEP-0313 at sign-in: the messages after the newest one
                                   known (parley_archive_set_last, or seen this session),
                                   else the last archive_sync messages of each conversation
                                   (and of each room on joining); 0: none (default) */
} parley_options;

/* Fill in the defaults above (everything else NULL/0). */
void parley_options_init(parley_options *o);

/* ------------------------------------------------------------------ lifecycle */

/* Validate and copy the options (the password file is read here). NULL on error, with
 * *err (may be NULL) set to PARLEY_ERR_INVALID and the reason in *why if given. */
parley *parley_new(const parley_options *o, parley_error *err, char *why, size_t whylen);
void parley_free(parley *p); /* closes the connection without ceremony */

/* Start connecting (returns at once; progress happens in parley_process). */
parley_error parley_connect(parley *p);
/* Polite close: unavailable presence, </stream:stream>, no reconnect. The close is
 * flushed by the following parley_process calls (state becomes OFFLINE). */
parley_error parley_disconnect(parley *p);

parley_state parley_get_state(const parley *p);
/* The error that ended the last attempt or session, and its context
 * ("127.0.0.1:5222: certificate verify failed: self-signed certificate"). */
parley_error parley_last_error(const parley *p);
const char *parley_last_error_text(const parley *p);
/* Bound full JID once online, else NULL. */
const char *parley_bound_jid(const parley *p);

/* ------------------------------------------------------------------ event loop */

/* The socket to watch, or -1 (it changes across reconnects: ask again each time). */
int parley_fd(const parley *p);
/* poll(2) events to wait for on parley_fd(): POLLIN, plus POLLOUT when output is queued. */
short parley_poll_events(const parley *p);
/* Milliseconds until the library next needs parley_process() for a timer; -1: none. */
int parley_timeout_ms(const parley *p);
/* Wait up to timeout_ms (0: just handle what is ready) for I/O and timers, handle them
 * and deliver events. Returns PARLEY_OK, or the final error once the handle has gone
 * OFFLINE for good (no reconnect pending). */
parley_error parley_process(parley *p, int timeout_ms);
/* Convenience: process until done(p, ud) returns non-zero (checked after every step),
 * until timeout_ms passes (-1: no limit), or until the handle is OFFLINE. Returns
 * PARLEY_OK when done, PARLEY_ERR_TIMEOUT, or the error that took it offline. */
parley_error parley_run_until(parley *p, int (*done)(parley *p, void *ud), void *ud,
                              int timeout_ms);

/* ------------------------------------------------------------------ security state */

/* The client-to-server lock: what protects this connection right now. */
typedef struct parley_tls_info {
    char version[16];       /* "TLSv1.3" */
    char cipher[64];        /* "TLS_AES_256_GCM_SHA384" */
    int key_bits;           /* symmetric key size: 256 */
    int verified;           /* chain and domain verified (always 1 once connected) */
    char peer_subject[256]; /* subject of the server certificate */
    char sasl_mechanism[32];/* "SCRAM-SHA-256-PLUS" */
    char channel_binding[32]; /* "tls-exporter", "tls-server-end-point" or "" */
    char server[96];        /* the address connected to, "127.0.0.1:5222" */
} parley_tls_info;

/* PARLEY_OK and *out filled while online; PARLEY_ERR_STATE otherwise. */
parley_error parley_tls_info_get(const parley *p, parley_tls_info *out);

/* Is the conversation with bare JID `with` client-to-client encrypted: does the policy
 * allow end-to-end encryption, are our keys published, and has `with` a device we can
 * encrypt to (known from its device list or an existing session)? */
int parley_conversation_encrypted(const parley *p, const char *with);

/* ------------------------------------------------------------------ admin policy */

/* The effective admin policy (urn:parley:policy:0), fetched at sign-in before CONNECTED
 * and updated by the server's pushes (PARLEY_EV_POLICY). Without a policy from the
 * server (known 0): end-to-end encryption on, plaintext as e2e_plain_default says. */
typedef struct parley_policy {
    int known;              /* the server sent one */
    int e2e_aes;            /* end-to-end encryption allowed (keys published) */
    int e2e_plain;          /* plaintext one-to-one chat allowed */
    int disable_im_history;
    int chat_archive;
    int file_transfer;
    int screen_capture;
} parley_policy;

parley_error parley_policy_get(const parley *p, parley_policy *out);

/* ------------------------------------------------------------------ end-to-end keys */

enum { PARLEY_TRUST_UNTRUSTED = -1, PARLEY_TRUST_BLIND = 0, PARLEY_TRUST_VERIFIED = 1 };

typedef struct parley_e2e_device {
    const char *jid;          /* bare JID of the account */
    unsigned long device_id;
    const char *fingerprint;  /* "0a1b2c3d 4e5f6a7b ..." (8 groups of 8 hex digits), or
                                 "" when the identity key is not known yet */
    int trust;                /* PARLEY_TRUST_*: blind trust until the user verifies a device
                                 of the account; then new devices are untrusted until
                                 verified; a changed key is untrusted if it was verified */
    int key_changed;          /* its identity key changed and was not verified since */
    int active;               /* in the account's current device list */
    int has_session;
    const char *label;        /* "" if none */
} parley_e2e_device;

/* This device: its OMEMO device id and fingerprint (fp may be NULL). PARLEY_ERR_STATE if
 * no identity exists yet (it is made at the first sign-in that allows encryption). Works
 * without a connection. */
parley_error parley_e2e_own(parley *p, unsigned long *device_id, char *fp, size_t fplen);
/* Online and done with this sign-in's key publication (or withdrawal, or no OMEMO): from
 * now on peers can encrypt to this device (if the policy allows). */
int parley_e2e_ready(const parley *p);
/* The devices known for bare JID jid (NULL: every account), from the key store. */
parley_error parley_e2e_devices(parley *p, const char *jid,
                                int (*fn)(const parley_e2e_device *d, void *ud), void *ud);
/* Mark the device of jid whose fingerprint is fp (spaces ignored) verified
 * (PARLEY_TRUST_VERIFIED) or untrusted. PARLEY_ERR_INVALID if jid has no such device. */
parley_error parley_e2e_trust(parley *p, const char *jid, const char *fp, int trust);

/* ------------------------------------------------------------------ instant messaging */

/* Send a message (type NULL: "chat"). If id_out is given, the stanza id is copied there.
 * One-to-one messages follow the admin policy: end-to-end encrypted (OMEMO) to every
 * device of the recipient and our own other devices when allowed and possible (the
 * device lists and bundles are fetched first, so the message may leave a little later),
 * otherwise plaintext if allowed. PARLEY_EV_SENT says when it left and whether it was
 * encrypted; a refusal (policy: no plaintext and no usable device) or a bounce is a
 * PARLEY_EV_MESSAGE of msg_type "error" with the same id. Group chat is never encrypted. */
parley_error parley_send_message(parley *p, const char *to, const char *type,
                                 const char *body, char *id_out, size_t id_len);

typedef enum {
    PARLEY_SHOW_AVAILABLE = 0,
    PARLEY_SHOW_CHAT,
    PARLEY_SHOW_AWAY,
    PARLEY_SHOW_XA,
    PARLEY_SHOW_DND,
    PARLEY_SHOW_UNAVAILABLE,
} parley_show;

/* Broadcast our presence (status may be NULL). Remembered and re-sent after a reconnect. */
parley_error parley_set_presence(parley *p, parley_show show, const char *status, int priority);

typedef enum {
    PARLEY_SUB_REQUEST = 0, /* ask to see their presence ("subscribe") */
    PARLEY_SUB_CANCEL,      /* stop seeing it ("unsubscribe") */
    PARLEY_SUB_APPROVE,     /* let them see ours ("subscribed") */
    PARLEY_SUB_DENY,        /* refuse or revoke ("unsubscribed") */
} parley_sub_action;

parley_error parley_subscription(parley *p, const char *jid, parley_sub_action action);

/* Roster (RFC 6121 2). Add or update an item (name and groups may be NULL/0), or remove
 * it. cb (may be NULL) gets the server's answer. The local copy changes on the push. */
parley_error parley_roster_set(parley *p, const char *jid, const char *name,
                               const char *const *groups, size_t ngroups, parley_iq_fn cb,
                               void *ud);
parley_error parley_roster_remove(parley *p, const char *jid, parley_iq_fn cb, void *ud);

typedef struct parley_roster_item {
    const char *jid;
    const char *name;          /* or NULL */
    const char *subscription;  /* "none", "to", "from", "both" */
    int ask;                   /* subscription request pending */
    const char *const *groups;
    size_t ngroups;
} parley_roster_item;

/* Call fn for each roster item (the order is unspecified); fn returns non-zero to stop. */
void parley_roster_foreach(const parley *p, int (*fn)(const parley_roster_item *it, void *ud),
                           void *ud);

/* ------------------------------------------------------------------ group chat */

/* XEP-0045 rooms. A room is "name@service"; a name without a service is completed with
 * parley_room_service(). Rooms joined are joined again after a reconnect. Room messages
 * are encrypted between client and server only: events never mark them encrypted.
 * Errors from the room (wrong password, banned, members only, nickname taken, not a
 * moderator, ...) arrive as PARLEY_EV_ROOM_ERROR with the server's explanation. */

/* Join (or create) room under nick (NULL: the account's local part), with password (NULL:
 * none). PARLEY_EV_ROOM_JOINED or PARLEY_EV_ROOM_ERROR follows. A new room is opened with
 * the service's default configuration (an "instant room"). */
parley_error parley_room_join(parley *p, const char *room, const char *nick,
                              const char *password);
/* Leave (status may be NULL): PARLEY_EV_ROOM_LEFT follows. */
parley_error parley_room_leave(parley *p, const char *room, const char *status);
/* A group chat message (our echo comes back as PARLEY_EV_ROOM_MESSAGE with is_self). */
parley_error parley_room_send(parley *p, const char *room, const char *body, char *id_out,
                              size_t id_len);
parley_error parley_room_set_subject(parley *p, const char *room, const char *subject);
/* Mediated invitation (XEP-0045 7.8.2) of jid, with a reason (may be NULL). */
parley_error parley_room_invite(parley *p, const char *room, const char *jid,
                                const char *reason);
/* Moderation: kick an occupant by nickname (role none), ban a real JID (affiliation
 * outcast). cb (may be NULL) gets the room's answer; with cb NULL a refusal arrives as
 * PARLEY_EV_ROOM_ERROR. */
parley_error parley_room_kick(parley *p, const char *room, const char *nick,
                              const char *reason, parley_iq_fn cb, void *ud);
parley_error parley_room_ban(parley *p, const char *room, const char *jid, const char *reason,
                             parley_iq_fn cb, void *ud);

/* The answer to a room owner's or admin's request: err PARLEY_OK, or the refusal with
 * the room's explanation ("forbidden: only owners may destroy the room"). With cb NULL a
 * refusal arrives as PARLEY_EV_ROOM_ERROR instead. */
typedef void (*parley_room_done_fn)(parley *p, const char *room, parley_error err,
                                    const char *error_text, void *ud);
/* Grant or revoke jid's affiliation with the room ("owner", "admin", "member", "none",
 * "outcast"); the room need not be joined. */
parley_error parley_room_set_affiliation(parley *p, const char *room, const char *jid,
                                         const char *affiliation, const char *reason,
                                         parley_room_done_fn cb, void *ud);
/* Take another nickname in a room we are in: a PARLEY_EV_ROOM_PRESENCE with room_change
 * PARLEY_ROOM_NICK (is_self, new_nick) follows, or a PARLEY_EV_ROOM_ERROR (the nickname
 * is taken: "conflict: ..."). */
parley_error parley_room_change_nick(parley *p, const char *room, const char *nick);
/* Destroy the room (owners only; XEP-0045 10.9); its occupants are told the reason. */
parley_error parley_room_destroy(parley *p, const char *room, const char *reason,
                                 parley_room_done_fn cb, void *ud);
/* One field of a room's configuration form (muc#roomconfig, XEP-0045 10.2). */
typedef struct parley_room_field {
    const char *var;   /* "muc#roomconfig_membersonly" */
    const char *type;  /* "boolean", "text-single", "list-single", ... (NULL when setting) */
    const char *label; /* the server's words for it, or NULL */
    const char *value; /* the current value (booleans "1"/"0"), or NULL */
} parley_room_field;
typedef void (*parley_room_config_fn)(parley *p, const char *room,
                                      const parley_room_field *fields, size_t n,
                                      parley_error err, const char *error_text, void *ud);
/* The room's current configuration (owners only), FORM_TYPE and hidden fields left out. */
parley_error parley_room_config_get(parley *p, const char *room, parley_room_config_fn cb,
                                    void *ud);
/* Change the fields given (var and value; the others keep their values); the room tells
 * its occupants (status 104). At most PARLEY_ROOM_MAX_FIELDS fields. */
#define PARLEY_ROOM_MAX_FIELDS 32
parley_error parley_room_config_set(parley *p, const char *room,
                                    const parley_room_field *fields, size_t n,
                                    parley_room_done_fn cb, void *ud);

typedef struct parley_room_item {
    const char *jid;
    const char *name; /* or NULL */
} parley_room_item;
/* The rooms a service lists (disco#items; service NULL: parley_room_service()). err is
 * PARLEY_OK with items (n may be 0), or the error with its text. */
typedef void (*parley_rooms_fn)(parley *p, const parley_room_item *items, size_t n,
                                parley_error err, const char *error_text, void *ud);
parley_error parley_room_list(parley *p, const char *service, parley_rooms_fn cb, void *ud);
/* The group chat service found on the account's server at sign-in (the first disco item
 * with identity conference/text), else NULL. */
const char *parley_room_service(const parley *p);

typedef struct parley_occupant {
    const char *nick;
    const char *jid;         /* real JID when the room shows it, else NULL */
    const char *role;
    const char *affiliation;
    const char *show;        /* NULL: available */
    int is_self;
} parley_occupant;
/* The occupants of a room we are in (fn returns non-zero to stop). PARLEY_ERR_STATE if
 * we are not in it. */
parley_error parley_room_occupants(const parley *p, const char *room,
                                   int (*fn)(const parley_occupant *o, void *ud), void *ud);
/* Our nickname in room once joined, else NULL; its subject (NULL if none). */
const char *parley_room_nick(const parley *p, const char *room);
const char *parley_room_subject(const parley *p, const char *room);

/* ------------------------------------------------------------------ archive */

/* XEP-0313. Results arrive as PARLEY_EV_MESSAGE (the account's archive) or
 * PARLEY_EV_ROOM_MESSAGE (a room's), with archived 1, stanza_id and timestamp_ms, oldest
 * first, without any message this handle already delivered; then PARLEY_EV_ARCHIVE_DONE.
 * While a fetch runs, live messages of the same archive wait, so they come after it. */

/* Fetch from archive (NULL: the account's; or a room's JID) the conversation with `with`
 * (bare JID, NULL: all): the messages after after_id (NULL: the last max), at most max. */
parley_error parley_archive_fetch(parley *p, const char *archive, const char *with,
                                  const char *after_id, int max);
/* The newest archive id the application already has for archive (from its own storage):
 * the sign-in sync (archive_sync) fetches only what came after it. */
parley_error parley_archive_set_last(parley *p, const char *archive, const char *id);
/* The newest archive id this handle knows for archive (to keep for the next start), or
 * NULL. */
const char *parley_archive_last(const parley *p, const char *archive);

/* ------------------------------------------------------------------ extension hooks */

/* Add a hook for received stanzas (name: "message", "presence", "iq" or NULL for all,
 * child_ns: only stanzas with a child element in this namespace, or NULL). Returns a
 * handle id > 0 for parley_remove_stanza_hook, or -1. Hooks run in the order added. */
int parley_add_stanza_hook(parley *p, const char *name, const char *child_ns,
                           parley_stanza_fn fn, void *ud);
void parley_remove_stanza_hook(parley *p, int hook_id);

/* Send any stanza given as XML text in the jabber:client namespace ("<message to=...>").
 * It is parsed and re-serialized (so it cannot break the stream). */
parley_error parley_send_xml(parley *p, const char *xml);
/* Send an IQ (type get or set) given as XML text; an id is assigned if it has none and
 * copied to id_out if given. cb gets the answer, or a time-out after timeout_ms
 * (<= 0: 30000). */
parley_error parley_send_iq(parley *p, const char *xml, parley_iq_fn cb, void *ud,
                            int timeout_ms, char *id_out, size_t id_len);

/* ------------------------------------------------------------------ file transfer */

/* XEP-0363 HTTP File Upload on the account's server (service upload.DOMAIN): ask for a
 * slot, PUT the bytes, send the GET URL in a message. docs/file-transfer.md. */

/* The slot (put_url and get_url), or err != PARLEY_OK with error_text saying why
 * (PARLEY_ERR_POLICY with the refusing policy's sentence when the server refused it). */
typedef void (*parley_slot_fn)(parley *p, const char *put_url, const char *get_url,
                               parley_error err, const char *error_text, void *userdata);
/* Ask for an upload slot for a file of size bytes called name (content_type may be
 * NULL). screen_capture marks a screen capture (judged by that policy); recipient (may
 * be NULL) is the intended recipient or room, for the compliance record. */
parley_error parley_request_upload_slot(parley *p, const char *name, long long size,
                                        const char *content_type, int screen_capture,
                                        const char *recipient, parley_slot_fn cb, void *ud);
/* Send a file's URL to `to` (body and XEP-0066 out-of-band data; desc may be NULL). */
parley_error parley_send_file_link(parley *p, const char *to, const char *url,
                                   const char *desc, char *id_out, size_t id_len);
/* The same to a room we are in (PARLEY_ERR_STATE if not), as a groupchat message. */
parley_error parley_room_send_file_link(parley *p, const char *room, const char *url,
                                        const char *desc, char *id_out, size_t id_len);
/* Blocking HTTPS transfers under the same TLS policy and certificate verification as the
 * XMPP connection (ca_file NULL: the system store). PUT sends the whole file at path with
 * its exact length; GET writes the body to dest (through a temporary file, renamed when
 * complete; dest is never overwritten). timeout_ms bounds every wait for the network.
 * PARLEY_OK, or an error with the server's answer or the failure in err. */
parley_error parley_https_put(const char *url, const char *ca_file, const char *path,
                              const char *content_type, int timeout_ms, char *err,
                              size_t errlen);
parley_error parley_https_get(const char *url, const char *ca_file, const char *dest,
                              int timeout_ms, char *err, size_t errlen);
/* HEAD: PARLEY_OK if url can be downloaded now, PARLEY_ERR_INVALID if the server has no
 * such file (404: not yet released by the compliance server, blocked or expired). */
parley_error parley_https_head(const char *url, const char *ca_file, int timeout_ms,
                               char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
