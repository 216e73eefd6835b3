/* fuzz_xmlstream.c - libFuzzer target for the stream parser, the document parser and
 * the serializer.
 *
 * The input is fed to an xmlstream whole and in two chunkings derived from its first
 * byte (a server sees arbitrary TCP segmentation); every stanza is serialized and must
 * parse again, and a second round trip must be stable: what we forward to a peer must
 * never be something that peer's parser rejects. The input is also given to
 * xml_parse_document and any tree it returns is serialized. */
#include "common/xmlstream.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STANZA 65536

#define REPARSE_HEADER                                                                     \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

typedef struct {
    int stanzas;
    xml_node *got; /* reparse: the single stanza received */
} fuzz_state;

static xs_action collect(void *ud, xml_node *st)
{
    fuzz_state *f = ud;
    f->stanzas++;
    if (f->got)
        xml_free(f->got);
    f->got = st;
    return XS_CONTINUE;
}

/* Parse one serialized stanza inside a jabber:client stream and serialize it again. */
static char *reparse(const char *s)
{
    static const xmlstream_handlers h = {NULL, collect, NULL};
    fuzz_state f = {0, NULL};
    size_t len = strlen(s);
    /* Escaping can make the serialization longer than the source was. */
    xmlstream *xs = xmlstream_new(&h, &f, 8 * len + 64);
    xs_status st = xmlstream_feed(xs, REPARSE_HEADER, strlen(REPARSE_HEADER));
    if (st == XS_OK)
        st = xmlstream_feed(xs, s, len);
    if (st != XS_OK || f.stanzas != 1)
        abort(); /* we produced XML our own parser refuses */
    char *out = xml_to_string(f.got, XMLNS_CLIENT);
    xml_free(f.got);
    xmlstream_free(xs);
    return out;
}

static xs_action on_open(void *ud, const xml_node *root)
{
    char *s = xml_to_string(root, NULL);
    free(s);
    return XS_CONTINUE;
}

static xs_action on_stanza(void *ud, xml_node *st)
{
    int *count = ud;
    (*count)++;
    xs_action a = XS_CONTINUE;
    if (xml_is(st, XMLNS_TLS, "proceed") || xml_is(st, XMLNS_SASL, "success"))
        a = XS_RESTART;
    else if (strcmp(st->name, "stop") == 0)
        a = XS_STOP;

    xml_node *copy = xml_copy(st);
    xml_free(st);
    char *s1 = xml_to_string(copy, XMLNS_CLIENT);
    char *s2 = reparse(s1);
    char *s3 = reparse(s2);
    /* The first trip may normalize line ends and attribute whitespace; after that the
     * serialization is a fixed point. */
    if (strcmp(s2, s3) != 0)
        abort();
    free(s1);
    free(s2);
    free(s3);
    xml_free(copy);
    return a;
}

static xs_action on_close(void *ud)
{
    return XS_CONTINUE;
}

static void run_stream(const uint8_t *data, size_t size, size_t chunk)
{
    static const xmlstream_handlers h = {on_open, on_stanza, on_close};
    int count = 0;
    xmlstream *xs = xmlstream_new(&h, &count, MAX_STANZA);
    for (size_t off = 0; off < size;) {
        size_t n = size - off < chunk ? size - off : chunk;
        xs_status st = xmlstream_feed(xs, (const char *)data + off, n);
        off += n;
        if (st != XS_OK && st != XS_RESTARTED)
            break;
    }
    (void)xmlstream_error_text(xs);
    xmlstream_free(xs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    run_stream(data, size, size);
    run_stream(data, size, (size_t)(data[0] & 0x0F) + 1);
    run_stream(data, size, (size_t)(data[0] >> 4) * 97 + 1);

    xml_node *doc = xml_parse_document((const char *)data, size, XMLNS_CLIENT, MAX_STANZA);
    if (doc) {
        char *s = xml_to_string(doc, XMLNS_CLIENT);
        char *again = reparse(s);
        free(again);
        free(s);
        s = xml_to_string(doc, NULL);
        free(s);
        xml_free(doc);
    }
    return 0;
}
