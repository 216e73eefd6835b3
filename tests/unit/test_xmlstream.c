/* test_xmlstream.c - unit tests for the incremental XMPP stream parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/xmlstream.h"

#include <stdlib.h>
#include <string.h>

#define MAX_STANZA 262144

#define HEADER                                                                             \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                           \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' "      \
    "xml:lang='en' id='s1'>"

/* What the handlers saw. */
typedef struct rec {
    xmlstream *xs;
    int opens, closes, stanzas;
    buf out;             /* every stanza serialized, in order, each followed by '\n' */
    xml_node *root;      /* copy of the last stream header */
    char *first_ns;      /* namespace of the first stanza */
    int stop_at;         /* XS_STOP on this stanza number (1-based), 0: never */
    int restart_at;      /* XS_RESTART on this stanza number */
    int reset_at;        /* call xmlstream_reset from the handler on this stanza number */
    xs_action on_open;   /* what stream_open returns */
    xs_action on_close;  /* what stream_close returns */
} rec;

static xs_action h_open(void *ud, const xml_node *root)
{
    rec *r = ud;
    r->opens++;
    xml_free(r->root);
    r->root = xml_copy(root);
    return r->on_open;
}

static xs_action h_stanza(void *ud, xml_node *st)
{
    rec *r = ud;
    r->stanzas++;
    assert_null(st->parent);
    if (!r->first_ns)
        r->first_ns = strdup(st->ns);
    xml_serialize(st, XMLNS_CLIENT, &r->out);
    buf_append_str(&r->out, "\n");
    xml_free(st);
    if (r->stanzas == r->reset_at)
        xmlstream_reset(r->xs);
    if (r->stanzas == r->stop_at)
        return XS_STOP;
    if (r->stanzas == r->restart_at)
        return XS_RESTART;
    return XS_CONTINUE;
}

static xs_action h_close(void *ud)
{
    rec *r = ud;
    r->closes++;
    return r->on_close;
}

static const xmlstream_handlers handlers = {h_open, h_stanza, h_close};

static void rec_init(rec *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->out);
    r->xs = xmlstream_new(&handlers, r, max);
}

static void rec_free(rec *r)
{
    xmlstream_free(r->xs);
    buf_free(&r->out);
    xml_free(r->root);
    free(r->first_ns);
}

static const char *out(const rec *r)
{
    return r->out.data ? r->out.data : "";
}

static xs_status feed_str(rec *r, const char *s)
{
    return xmlstream_feed(r->xs, s, strlen(s));
}

static void test_header(void **state)
{
    rec r;
    rec_init(&r, MAX_STANZA);
    assert_int_equal(feed_str(&r, HEADER), XS_OK);
    assert_int_equal(r.opens, 1);
    assert_non_null(r.root);
    assert_true(xml_is(r.root, XMLNS_STREAM, "stream"));
    assert_string_equal(xml_get_attr(r.root, "xmlns"), XMLNS_CLIENT);
    assert_string_equal(xml_get_attr(r.root, "to"), "example.com");
    assert_string_equal(xml_get_attr(r.root, "version"), "1.0");
    assert_string_equal(xml_get_attr(r.root, "xml:lang"), "en");
    assert_string_equal(xml_get_attr(r.root, "id"), "s1");
    assert_null(xml_get_attr(r.root, "xmlns:stream"));
    assert_null(r.root->children);
    assert_int_equal(r.stanzas, 0);
    assert_string_equal(xmlstream_error_text(r.xs), "no error");
    rec_free(&r);

    /* A server stream, no XML declaration, other prefix, no default namespace. */
    rec_init(&r, MAX_STANZA);
    assert_int_equal(feed_str(&r, "<s:stream xmlns:s='http://etherx.jabber.org/streams' "
                                  "xmlns='jabber:server' from='a.example'><message/>"),
                     XS_OK);
    assert_string_equal(xml_get_attr(r.root, "xmlns"), XMLNS_SERVER);
    assert_string_equal(xml_get_attr(r.root, "from"), "a.example");
    assert_null(xml_get_attr(r.root, "xml:lang"));
    assert_string_equal(r.first_ns, XMLNS_SERVER);
    rec_free(&r);

    rec_init(&r, MAX_STANZA);
    assert_int_equal(feed_str(&r, "<stream:stream xmlns:stream='http://etherx.jabber.org/"
                                  "streams'><message/>"),
                     XS_OK);
    assert_null(xml_get_attr(r.root, "xmlns"));
    assert_string_equal(r.first_ns, ""); /* unqualified */
    rec_free(&r);
}

static void test_stanzas_one_feed(void **state)
{
    rec r;
    rec_init(&r, MAX_STANZA);
    assert_int_equal(feed_str(&r, HEADER
                              "<message to='a@b' xml:lang='de'><body>hi &amp; bye</body></message>"
                              "\n  <iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"
                              "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
                              "<required/></starttls></stream:features>   "),
                     XS_OK);
    assert_int_equal(r.stanzas, 3);
    assert_string_equal(r.first_ns, XMLNS_CLIENT);
    assert_string_equal(out(&r),
                        "<message to=\"a@b\" xml:lang=\"de\"><body>hi &amp; bye</body></message>\n"
                        "<iq type=\"get\" id=\"1\"><ping xmlns=\"urn:xmpp:ping\"/></iq>\n"
                        "<stream:features><starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\">"
                        "<required/></starttls></stream:features>\n");
    assert_int_equal(r.closes, 0);
    assert_int_equal(feed_str(&r, "</stream:stream>"), XS_OK);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.stanzas, 3);
    rec_free(&r);
}

static const char split_input[] =
    HEADER "\n<message to='juliet@example.com' type='chat'><body>caf\xC3\xA9 \xE2\x98\xBA "
           "&lt;&#x41;&#66;&quot;\r\n<![CDATA[<not a tag>]]></body><x xmlns='jabber:x:data'"
           " a='1'/></message>\r\n<iq id='2' type='set'><query xmlns='jabber:iq:roster'>"
           "<item jid='a@b'/></query></iq> <presence/></stream:stream>";

static void test_split_every_boundary(void **state)
{
    size_t len = strlen(split_input);
    rec ref;
    rec_init(&ref, MAX_STANZA);
    assert_int_equal(xmlstream_feed(ref.xs, split_input, len), XS_OK);
    assert_int_equal(ref.opens, 1);
    assert_int_equal(ref.stanzas, 3);
    assert_int_equal(ref.closes, 1);
    assert_string_equal(out(&ref),
                        "<message to=\"juliet@example.com\" type=\"chat\"><body>caf\xC3\xA9 "
                        "\xE2\x98\xBA &lt;AB\"\n&lt;not a tag&gt;</body><x "
                        "xmlns=\"jabber:x:data\" a=\"1\"/></message>\n"
                        "<iq id=\"2\" type=\"set\"><query xmlns=\"jabber:iq:roster\">"
                        "<item jid=\"a@b\"/></query></iq>\n<presence/>\n");

    for (size_t i = 0; i <= len; i++) {
        rec r;
        rec_init(&r, MAX_STANZA);
        assert_int_equal(xmlstream_feed(r.xs, split_input, i), XS_OK);
        assert_int_equal(xmlstream_feed(r.xs, split_input + i, len - i), XS_OK);
        assert_int_equal(r.opens, 1);
        assert_int_equal(r.closes, 1);
        assert_string_equal(out(&r), out(&ref));
        rec_free(&r);
    }
    /* One byte at a time. */
    rec r;
    rec_init(&r, MAX_STANZA);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(xmlstream_feed(r.xs, split_input + i, 1), XS_OK);
    assert_int_equal(r.closes, 1);
    assert_string_equal(out(&r), out(&ref));
    rec_free(&r);
    rec_free(&ref);
}

/* Feed s, expect status st with no header or stanza delivered and a reason containing
 * reason; a second feed must return the same error (errors are sticky). */
static void expect_refused(const char *s, size_t max, xs_status st, const char *reason,
                           int opens)
{
    rec r;
    rec_init(&r, max);
    xs_status got = feed_str(&r, s);
    if (got != st)
        fail_msg("got %d, expected %d (%s) for: %s", got, st, xmlstream_error_text(r.xs), s);
    if (!strstr(xmlstream_error_text(r.xs), reason))
        fail_msg("reason '%s' does not contain '%s'", xmlstream_error_text(r.xs), reason);
    assert_int_equal(r.opens, opens);
    assert_int_equal(r.stanzas, 0);
    assert_int_equal(feed_str(&r, "<message/>"), st);
    assert_int_equal(r.stanzas, 0);
    rec_free(&r);
}

static void test_restricted(void **state)
{
    expect_refused("<?xml version='1.0'?><!DOCTYPE stream:stream>" HEADER, MAX_STANZA,
                   XS_ERR_RESTRICTED, "DOCTYPE", 0);
    expect_refused(HEADER "<!-- hidden -->", MAX_STANZA, XS_ERR_RESTRICTED, "comments", 1);
    expect_refused("<!-- before -->" HEADER, MAX_STANZA, XS_ERR_RESTRICTED, "comments", 0);
    expect_refused(HEADER "<message><!-- in --></message>", MAX_STANZA, XS_ERR_RESTRICTED,
                   "comments", 1);
    expect_refused(HEADER "<message><?php evil()?></message>", MAX_STANZA, XS_ERR_RESTRICTED,
                   "processing instructions", 1);
    expect_refused("<?xml-stylesheet href='x'?>" HEADER, MAX_STANZA, XS_ERR_RESTRICTED,
                   "processing instructions", 0);
    expect_refused(HEADER "<message>&lol;</message>", MAX_STANZA, XS_ERR_RESTRICTED,
                   "undefined entity", 1);
    expect_refused("<?xml version='1.0' encoding='ISO-8859-1'?>" HEADER, MAX_STANZA,
                   XS_ERR_RESTRICTED, "ISO-8859-1", 0);
}

static void test_billion_laughs(void **state)
{
    const char *bomb =
        "<?xml version='1.0'?>\n<!DOCTYPE lolz [\n <!ENTITY lol 'lol'>\n"
        " <!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n"
        " <!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>\n"
        " <!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>\n"
        " <!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>\n"
        " <!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>\n"
        " <!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>\n"
        " <!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>\n"
        " <!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>\n"
        " <!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>\n"
        "]>\n" HEADER "<message><body>&lol9;</body></message>";
    expect_refused(bomb, MAX_STANZA, XS_ERR_RESTRICTED, "DOCTYPE", 0);
    /* Split inside the DTD: still refused, nothing delivered. */
    rec r;
    rec_init(&r, MAX_STANZA);
    size_t len = strlen(bomb);
    xs_status st = XS_OK;
    for (size_t i = 0; i < len && st == XS_OK; i += 7)
        st = xmlstream_feed(r.xs, bomb + i, len - i < 7 ? len - i : 7);
    assert_int_equal(st, XS_ERR_RESTRICTED);
    assert_int_equal(r.opens, 0);
    assert_int_equal(r.stanzas, 0);
    rec_free(&r);
}

static void test_not_well_formed(void **state)
{
    expect_refused(HEADER "<message></iq>", MAX_STANZA, XS_ERR_XML, "mismatched tag", 1);
    expect_refused(HEADER "<message a='1' a='2'/>", MAX_STANZA, XS_ERR_XML, "duplicate", 1);
    expect_refused(HEADER "<message>\xC3\x28</message>", MAX_STANZA, XS_ERR_XML, "line 1", 1);
    expect_refused(HEADER "<x:message/>", MAX_STANZA, XS_ERR_XML, "prefix", 1);
    expect_refused("\n\n<<stream", MAX_STANZA, XS_ERR_XML, "line 3", 0);
    /* Anything after </stream:stream> is junk. */
    rec r;
    rec_init(&r, MAX_STANZA);
    assert_int_equal(feed_str(&r, HEADER "</stream:stream>"), XS_OK);
    assert_int_equal(r.closes, 1);
    assert_int_equal(feed_str(&r, "<message/>"), XS_ERR_XML);
    assert_int_equal(r.stanzas, 0);
    rec_free(&r);
}

static void test_unclosed(void **state)
{
    rec r;
    rec_init(&r, MAX_STANZA);
    assert_int_equal(feed_str(&r, HEADER "<message><body>partial text<b a='x"), XS_OK);
    assert_int_equal(r.stanzas, 0);
    assert_int_equal(r.closes, 0);
    rec_free(&r); /* the half-built tree is freed (ASan checks) */

    rec_init(&r, MAX_STANZA);
    assert_int_equal(feed_str(&r, HEADER "<message><body>partial"), XS_OK);
    assert_int_equal(feed_str(&r, "</body>"), XS_OK);
    assert_int_equal(r.stanzas, 0);
    assert_int_equal(feed_str(&r, "</message>"), XS_OK);
    assert_int_equal(r.stanzas, 1);
    assert_string_equal(out(&r), "<message><body>partial</body></message>\n");
    rec_free(&r);
}

static void test_bad_namespace(void **state)
{
    expect_refused("<stream:stream xmlns:stream='urn:wrong' xmlns='jabber:client'>",
                   MAX_STANZA, XS_ERR_BAD_NS, "stream:stream", 0);
    expect_refused("<stream xmlns='jabber:client'>", MAX_STANZA, XS_ERR_BAD_NS, "root", 0);
    expect_refused("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>",
                   MAX_STANZA, XS_ERR_BAD_NS, "root", 0);
    expect_refused("<message xmlns='jabber:client'/>", MAX_STANZA, XS_ERR_BAD_NS, "root", 0);
}

/* Feed total bytes of filler after prefix in pieces of chunk bytes; return how many
 * bytes (prefix included) had been fed when the error came, or 0 if none came. */
static size_t feed_until_error(rec *r, const char *prefix, char fill, size_t total,
                               size_t chunk, xs_status *st)
{
    char *piece = malloc(chunk);
    memset(piece, fill, chunk);
    size_t fed = strlen(prefix);
    *st = feed_str(r, prefix);
    for (size_t done = 0; done < total && *st == XS_OK; done += chunk) {
        *st = xmlstream_feed(r->xs, piece, chunk);
        fed += chunk;
    }
    free(piece);
    return *st == XS_OK ? 0 : fed;
}

static void test_too_big_early(void **state)
{
    const size_t MB = 1024 * 1024, chunk = 4096;
    size_t hdr = strlen(HEADER);
    xs_status st;

    /* Text content: refused once the stanza passes the limit, long before 1 MB. */
    rec r;
    rec_init(&r, MAX_STANZA);
    size_t fed = feed_until_error(&r, HEADER "<message><body>", 'a', MB, chunk, &st);
    assert_int_equal(st, XS_ERR_TOO_BIG);
    assert_true(fed > hdr + MAX_STANZA);
    assert_true(fed <= hdr + MAX_STANZA + 2 * chunk);
    assert_non_null(strstr(xmlstream_error_text(r.xs), "stanza exceeds 262144 bytes"));
    assert_int_equal(r.stanzas, 0);
    assert_int_equal(feed_str(&r, "</body></message>"), XS_ERR_TOO_BIG);
    assert_int_equal(r.stanzas, 0);
    rec_free(&r);

    /* An unfinished start tag: expat calls no handler, the between-chunk check must. */
    rec_init(&r, MAX_STANZA);
    fed = feed_until_error(&r, HEADER "<message to='", 'b', MB, chunk, &st);
    assert_int_equal(st, XS_ERR_TOO_BIG);
    assert_true(fed <= hdr + MAX_STANZA + 2 * chunk);
    rec_free(&r);

    /* Many small elements. */
    rec_init(&r, MAX_STANZA);
    char *elems = malloc(MB + 1);
    for (size_t i = 0; i < MB; i += 4)
        memcpy(elems + i, "<a/>", 4);
    elems[MB] = '\0';
    assert_int_equal(feed_str(&r, HEADER "<message>"), XS_OK);
    for (size_t i = 0; i < MB; i += chunk) {
        st = xmlstream_feed(r.xs, elems + i, chunk);
        if (st != XS_OK) {
            assert_true(i <= MAX_STANZA + chunk);
            break;
        }
    }
    assert_int_equal(st, XS_ERR_TOO_BIG);
    rec_free(&r);

    /* All of it in one call: refused too, and nothing is delivered. */
    rec_init(&r, MAX_STANZA);
    assert_int_equal(feed_str(&r, HEADER "<message>"), XS_OK);
    assert_int_equal(xmlstream_feed(r.xs, elems, MB), XS_ERR_TOO_BIG);
    assert_int_equal(r.stanzas, 0);
    rec_free(&r);
    free(elems);

    /* A huge stream header counts against the limit as well. */
    rec_init(&r, 1000);
    fed = feed_until_error(&r, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'"
                               " to='",
                           'c', 100000, 100, &st);
    assert_int_equal(st, XS_ERR_TOO_BIG);
    assert_true(fed <= 1000 + 1024 + 100);
    assert_non_null(strstr(xmlstream_error_text(r.xs), "header"));
    assert_int_equal(r.opens, 0);
    rec_free(&r);
}

/* Build "<message><body>xxx</body></message>" of exactly size bytes. */
static char *stanza_of_size(size_t size)
{
    const char *pre = "<message><body>", *post = "</body></message>";
    size_t fixed = strlen(pre) + strlen(post);
    assert_true(size >= fixed);
    char *s = malloc(size + 1);
    strcpy(s, pre);
    memset(s + strlen(pre), 'x', size - fixed);
    strcpy(s + size - strlen(post), post);
    assert_int_equal(strlen(s), size);
    return s;
}

static void test_limit_exact(void **state)
{
    enum { LIMIT = 3000 };
    char *ok = stanza_of_size(LIMIT), *over = stanza_of_size(LIMIT + 1);
    rec r;

    /* At the limit: accepted, whole or byte by byte, after a gap of whitespace longer
     * than the limit (keepalives do not accumulate). */
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        rec_init(&r, LIMIT);
        assert_int_equal(feed_str(&r, HEADER), XS_OK);
        char *spaces = malloc(3 * LIMIT);
        memset(spaces, ' ', 3 * LIMIT);
        assert_int_equal(xmlstream_feed(r.xs, spaces, 3 * LIMIT), XS_OK);
        free(spaces);
        for (int n = 0; n < 2; n++) {
            if (bytewise) {
                for (size_t i = 0; i < LIMIT; i++)
                    assert_int_equal(xmlstream_feed(r.xs, ok + i, 1), XS_OK);
            } else {
                assert_int_equal(feed_str(&r, ok), XS_OK);
            }
        }
        assert_int_equal(r.stanzas, 2);
        rec_free(&r);
    }

    /* One byte over: refused. */
    rec_init(&r, LIMIT);
    assert_int_equal(feed_str(&r, HEADER), XS_OK);
    assert_int_equal(feed_str(&r, over), XS_ERR_TOO_BIG);
    assert_int_equal(r.stanzas, 0);
    rec_free(&r);

    /* An empty element at exactly the limit. */
    char *empty = malloc(LIMIT + 1);
    strcpy(empty, "<presence to='");
    memset(empty + 14, 'y', LIMIT - 14 - 3);
    strcpy(empty + LIMIT - 3, "'/>");
    rec_init(&r, LIMIT);
    assert_int_equal(feed_str(&r, HEADER), XS_OK);
    assert_int_equal(feed_str(&r, empty), XS_OK);
    assert_int_equal(feed_str(&r, empty), XS_OK);
    assert_int_equal(r.stanzas, 2);
    rec_free(&r);
    free(empty);
    free(ok);
    free(over);
}

static void test_restart(void **state)
{
    rec r;
    rec_init(&r, MAX_STANZA);
    r.restart_at = 1;
    /* Bytes after <proceed/> in the same read must never be interpreted: here they
     * would even be an error if they were. */
    assert_int_equal(feed_str(&r, HEADER "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                                  "<message><body>injected</body></message></bogus>"),
                     XS_RESTARTED);
    assert_int_equal(r.stanzas, 1);
    assert_string_equal(out(&r), "<proceed xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>\n");
    /* A new stream header is expected now, XML declaration included. */
    assert_int_equal(feed_str(&r, HEADER "<message><body>after</body></message>"), XS_OK);
    assert_int_equal(r.opens, 2);
    assert_int_equal(r.stanzas, 2);
    assert_non_null(strstr(out(&r), "<message><body>after</body></message>\n"));
    assert_null(strstr(out(&r), "injected"));
    rec_free(&r);

    /* The discarded rest may span several internal chunks. */
    rec_init(&r, MAX_STANZA);
    r.restart_at = 1;
    buf b;
    buf_init(&b);
    buf_append_str(&b, HEADER "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    for (int i = 0; i < 500; i++)
        buf_append_str(&b, "<message>x</message>");
    assert_int_equal(xmlstream_feed(r.xs, b.data, b.len), XS_RESTARTED);
    assert_int_equal(r.stanzas, 1);
    buf_free(&b);
    assert_int_equal(feed_str(&r, "<message/>"), XS_ERR_BAD_NS); /* not a header */
    rec_free(&r);

    /* From the header handler. */
    rec_init(&r, MAX_STANZA);
    r.on_open = XS_RESTART;
    assert_int_equal(feed_str(&r, HEADER "<message/>"), XS_RESTARTED);
    assert_int_equal(r.stanzas, 0);
    r.on_open = XS_CONTINUE;
    assert_int_equal(feed_str(&r, HEADER "<message/>"), XS_OK);
    assert_int_equal(r.opens, 2);
    assert_int_equal(r.stanzas, 1);
    rec_free(&r);

    /* xmlstream_reset called from inside a handler acts as XS_RESTART. */
    rec_init(&r, MAX_STANZA);
    r.reset_at = 1;
    assert_int_equal(feed_str(&r, HEADER "<auth/><message/>"), XS_RESTARTED);
    assert_int_equal(r.stanzas, 1);
    assert_int_equal(feed_str(&r, HEADER "<message/>"), XS_OK);
    assert_int_equal(r.stanzas, 2);
    rec_free(&r);
}

static void test_reset_outside(void **state)
{
    rec r;
    rec_init(&r, MAX_STANZA);
    assert_int_equal(feed_str(&r, HEADER "<message><body>half"), XS_OK);
    xmlstream_reset(r.xs); /* drops the half stanza */
    assert_int_equal(feed_str(&r, HEADER "<presence/>"), XS_OK);
    assert_int_equal(r.opens, 2);
    assert_string_equal(out(&r), "<presence/>\n");
    /* Reset also clears an error. */
    assert_int_equal(feed_str(&r, "<a></b>"), XS_ERR_XML);
    xmlstream_reset(r.xs);
    assert_string_equal(xmlstream_error_text(r.xs), "no error");
    assert_int_equal(feed_str(&r, HEADER "<iq/>"), XS_OK);
    assert_int_equal(r.stanzas, 2);
    rec_free(&r);
}

static void test_stop(void **state)
{
    rec r;
    rec_init(&r, MAX_STANZA);
    r.stop_at = 2;
    assert_int_equal(feed_str(&r, HEADER "<a/><b/><c/>"), XS_STOPPED);
    assert_int_equal(r.stanzas, 2);
    assert_int_equal(feed_str(&r, "<d/>"), XS_STOPPED);
    assert_int_equal(r.stanzas, 2);
    rec_free(&r);

    rec_init(&r, MAX_STANZA);
    r.on_close = XS_STOP;
    assert_int_equal(feed_str(&r, HEADER "<a/></stream:stream>"), XS_STOPPED);
    assert_int_equal(r.closes, 1);
    rec_free(&r);

    rec_init(&r, MAX_STANZA);
    r.on_open = XS_STOP;
    assert_int_equal(feed_str(&r, HEADER "<a/>"), XS_STOPPED);
    assert_int_equal(r.stanzas, 0);
    rec_free(&r);
}

/* Between stanzas the parser is dropped and later re-primed with the header's start
 * tag: prefixes declared on the root, its qualified name and its default namespace
 * must all survive that, over any number of idle periods. */
static void test_idle_resume(void **state)
{
    rec r;
    rec_init(&r, MAX_STANZA);
    assert_int_equal(feed_str(&r, "<s:stream xmlns:s='http://etherx.jabber.org/streams' "
                                  "xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
                                  "to='b.example'>"),
                     XS_OK);
    assert_int_equal(feed_str(&r, "<db:result from='a.example' to='b.example'>key</db:result>"),
                     XS_OK);
    assert_int_equal(feed_str(&r, "  "), XS_OK);
    assert_int_equal(feed_str(&r, "<message/>"), XS_OK);
    assert_int_equal(feed_str(&r, "<s:error><x xmlns='urn:x'/></s:error>"), XS_OK);
    assert_int_equal(r.opens, 1); /* the synthetic header is not reported */
    assert_string_equal(xml_get_attr(r.root, "to"), "b.example");
    assert_string_equal(out(&r), "<result xmlns=\"jabber:server:dialback\" from=\"a.example\" "
                                 "to=\"b.example\">key</result>\n"
                                 "<message xmlns=\"jabber:server\"/>\n"
                                 "<stream:error><x xmlns=\"urn:x\"/></stream:error>\n");
    assert_int_equal(feed_str(&r, "</s:stream>"), XS_OK); /* the original prefix */
    assert_int_equal(r.closes, 1);
    rec_free(&r);

    /* Unprefixed root in the streams namespace, and a namespace needing escapes. */
    rec_init(&r, MAX_STANZA);
    assert_int_equal(feed_str(&r, "<stream xmlns='http://etherx.jabber.org/streams' "
                                  "xmlns:x='urn:a&amp;&lt;b&quot;&#10;&#9;c'>"),
                     XS_OK);
    assert_int_equal(feed_str(&r, "<x:y/>"), XS_OK);
    assert_int_equal(feed_str(&r, "<features/>"), XS_OK);
    assert_string_equal(out(&r), "<y xmlns=\"urn:a&amp;&lt;b&quot;&#10;&#9;c\"/>\n<stream:features/>\n");
    assert_int_equal(feed_str(&r, "</stream>"), XS_OK);
    assert_int_equal(r.closes, 1);
    rec_free(&r);

    /* The stream's default namespace is still in force after idling, and a mismatched
     * close tag is still an error. */
    rec_init(&r, MAX_STANZA);
    assert_int_equal(feed_str(&r, HEADER), XS_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(feed_str(&r, "<presence/>"), XS_OK);
    assert_string_equal(r.first_ns, XMLNS_CLIENT);
    assert_int_equal(feed_str(&r, "</s:stream>"), XS_ERR_XML);
    rec_free(&r);
}

/* Without handlers stanzas are simply freed. */
static void test_no_handlers(void **state)
{
    xmlstream_handlers none = {NULL, NULL, NULL};
    xmlstream *xs = xmlstream_new(&none, NULL, 1000);
    const char *s = HEADER "<message><body>x</body></message></stream:stream>";
    assert_int_equal(xmlstream_feed(xs, s, strlen(s)), XS_OK);
    xmlstream_free(xs);
    xmlstream_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_stanzas_one_feed),
        cmocka_unit_test(test_split_every_boundary),
        cmocka_unit_test(test_restricted),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_not_well_formed),
        cmocka_unit_test(test_unclosed),
        cmocka_unit_test(test_bad_namespace),
        cmocka_unit_test(test_too_big_early),
        cmocka_unit_test(test_limit_exact),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_reset_outside),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_idle_resume),
        cmocka_unit_test(test_no_handlers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
