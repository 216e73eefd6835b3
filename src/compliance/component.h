/* component.h - one XEP-0114 session with parleyd: connect (direct TLS with parleyd's
 * certificate verified against ca_file and server_name, or plain TCP to a loopback
 * address), open a jabber:component:accept stream, authenticate with the handshake,
 * then answer IQs until the connection ends or the owner asks to stop. */
#ifndef PC_COMPONENT_H
#define PC_COMPONENT_H

#include "../common/xml.h"
#include "conf.h"

/* What a session needs from its owner (main.c). */
typedef struct comp_hooks {
    int wake_fd;              /* becomes readable when a signal arrived */
    int (*on_wake)(void *ud); /* handle it (drain wake_fd); nonzero: stop the session */
    /* A verdict request: the reply to send (caller of the hook frees it). self is the
     * domain this session authenticated as. */
    xml_node *(*on_check)(void *ud, const xml_node *iq, const char *self);
    void *ud;
} comp_hooks;

typedef enum {
    COMP_STOPPED = 0, /* on_wake asked to stop; the stream was closed politely */
    COMP_LOST,        /* could not connect, or the connection ended: try again later */
} comp_end;

/* Run one session with the settings in cfg (copied at the start: a reload during the
 * session applies to the next one). *authenticated says whether the handshake
 * succeeded. */
comp_end component_run(const pc_config *cfg, const comp_hooks *hooks, int *authenticated);

#endif
