/* muc.h - XEP-0045 multi-user chat, served inside parleyd at cfg.muc_domain
 * (conference.<domain> by default). See docs/muc.md for what is supported. */
#ifndef PARLEY_MUC_H
#define PARLEY_MUC_H

#include "server.h"

/* Register the service and load the persistent rooms (after the store and the
 * compliance archive are open). 0, or -1 after logging why. No-op when cfg.muc is off. */
int muc_init(server *srv);
/* Unregister and free every room (persistent rooms are already stored). */
void muc_free(server *srv);

#endif
