/* test_xml.c - unit tests for the stanza tree (xml.c) and xml_parse_document. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/xml.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DOC 65536

/* Serialize and compare, freeing the string. */
static void assert_xml(const xml_node *n, const char *parent_ns, const char *expect)
{
    char *s = xml_to_string(n, parent_ns);
    assert_string_equal(s, expect);
    free(s);
}

static xml_node *parse(const char *s)
{
    return xml_parse_document(s, strlen(s), XMLNS_CLIENT, MAX_DOC);
}

static void test_build_and_lookup(void **state)
{
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    assert_string_equal(iq->ns, XMLNS_CLIENT);
    assert_null(iq->parent);
    xml_node *q = xml_add_child(iq, XMLNS_ROSTER, "query");
    xml_node *item1 = xml_add_child(q, NULL, "item");
    xml_node *other = xml_add_child(q, "urn:other", "item");
    xml_node *item2 = xml_add_child(q, NULL, "item");
    assert_string_equal(item1->ns, XMLNS_ROSTER); /* NULL ns inherits the parent's */
    assert_ptr_equal(item1->parent, q);

    assert_ptr_equal(xml_child(iq, XMLNS_ROSTER, "query"), q);
    assert_null(xml_child(iq, XMLNS_CLIENT, "query"));
    assert_null(xml_child(iq, XMLNS_ROSTER, "item"));
    assert_ptr_equal(xml_child(q, NULL, "item"), item1);
    assert_ptr_equal(xml_child(q, "urn:other", NULL), other);
    assert_ptr_equal(xml_next(item1, XMLNS_ROSTER, "item"), item2);
    assert_ptr_equal(xml_next(item1, NULL, NULL), other);
    assert_null(xml_next(item2, NULL, NULL));
    assert_ptr_equal(xml_first_element(iq), q);
    assert_null(xml_first_element(item1));

    assert_true(xml_is(q, XMLNS_ROSTER, "query"));
    assert_false(xml_is(q, XMLNS_CLIENT, "query"));
    assert_false(xml_is(q, XMLNS_ROSTER, "item"));
    assert_false(xml_is(NULL, XMLNS_ROSTER, "query"));
    xml_free(iq);
}

static void test_text(void **state)
{
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_node *body = xml_add_child(m, NULL, "body");
    xml_add_text(body, "hello", 5);
    xml_add_text(body, ", world!!", 7); /* only 7 bytes taken */
    xml_add_text(body, "", 0);
    assert_non_null(body->children);
    assert_ptr_equal(body->children, body->last); /* merged into one text node */
    assert_null(body->children->name);
    assert_null(body->children->ns);
    assert_int_equal(body->children->text_len, 12);

    char *t = xml_text(body);
    assert_string_equal(t, "hello, world");
    free(t);
    t = xml_text(m); /* no direct text */
    assert_string_equal(t, "");
    free(t);
    t = xml_child_text(m, XMLNS_CLIENT, "body");
    assert_string_equal(t, "hello, world");
    free(t);
    assert_null(xml_child_text(m, XMLNS_CLIENT, "subject"));

    /* Text split by an element stays in two nodes; xml_text joins them. */
    xml_node *p = xml_new("", "p");
    xml_add_text(p, "a", 1);
    xml_add_child(p, NULL, "br");
    xml_add_text(p, "b", 1);
    t = xml_text(p);
    assert_string_equal(t, "ab");
    free(t);
    xml_free(p);

    /* Many small appends (as expat delivers them) build one long text. */
    xml_node *big = xml_new("", "big");
    for (int i = 0; i < 10000; i++)
        xml_add_text(big, "0123456789", 10);
    assert_int_equal(big->children->text_len, 100000);
    assert_int_equal(strlen(big->children->text), 100000);
    assert_memory_equal(big->children->text + 99990, "0123456789", 10);
    xml_free(big);
    xml_free(m);
}

static void test_attrs(void **state)
{
    xml_node *n = xml_new(XMLNS_CLIENT, "presence");
    assert_null(xml_get_attr(n, "to"));
    xml_set_attr(n, "to", "a@b");
    xml_set_attr(n, "type", "subscribe");
    xml_set_attr(n, "id", "x1");
    assert_string_equal(xml_get_attr(n, "to"), "a@b");
    xml_set_attr(n, "to", "c@d"); /* replace keeps position */
    assert_string_equal(xml_get_attr(n, "to"), "c@d");
    assert_xml(n, XMLNS_CLIENT, "<presence to=\"c@d\" type=\"subscribe\" id=\"x1\"/>");

    xml_set_attr(n, "type", NULL); /* remove middle */
    assert_null(xml_get_attr(n, "type"));
    assert_xml(n, XMLNS_CLIENT, "<presence to=\"c@d\" id=\"x1\"/>");
    xml_set_attr(n, "id", NULL); /* remove last, then append again */
    xml_set_attr(n, "from", "e@f");
    assert_xml(n, XMLNS_CLIENT, "<presence to=\"c@d\" from=\"e@f\"/>");
    xml_set_attr(n, "to", NULL); /* remove first */
    xml_set_attr(n, "missing", NULL);
    assert_xml(n, XMLNS_CLIENT, "<presence from=\"e@f\"/>");
    xml_set_attr(n, "from", NULL);
    assert_null(n->attrs);
    xml_free(n);
}

static void test_serialize_namespaces(void **state)
{
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "result");
    xml_node *q = xml_add_child(iq, XMLNS_DISCO_INFO, "query");
    xml_add_child(q, NULL, "identity");
    xml_add_child(q, XMLNS_CLIENT, "feature");
    xml_add_child(iq, "", "bare");

    assert_xml(iq, XMLNS_CLIENT,
               "<iq type=\"result\"><query xmlns=\"http://jabber.org/protocol/disco#info\">"
               "<identity/><feature xmlns=\"jabber:client\"/></query><bare xmlns=\"\"/></iq>");
    /* The same tree inside a server-to-server stream gets a namespace on the top node. */
    assert_xml(iq, XMLNS_SERVER,
               "<iq xmlns=\"jabber:client\" type=\"result\"><query "
               "xmlns=\"http://jabber.org/protocol/disco#info\"><identity/><feature "
               "xmlns=\"jabber:client\"/></query><bare xmlns=\"\"/></iq>");
    /* NULL parent_ns means no namespace in scope. */
    xml_node *plain = xml_new(NULL, "x");
    assert_xml(plain, NULL, "<x/>");
    assert_xml(plain, XMLNS_CLIENT, "<x xmlns=\"\"/>");
    xml_free(plain);
    /* Serializing a subtree uses parent_ns, not the real parent. */
    assert_xml(q, XMLNS_DISCO_INFO, "<query><identity/><feature xmlns=\"jabber:client\"/></query>");

    buf b;
    buf_init(&b);
    buf_append_str(&b, "prefix:");
    xml_serialize(q->children, XMLNS_DISCO_INFO, &b);
    assert_string_equal(b.data, "prefix:<identity/>");
    buf_free(&b);
    xml_free(iq);
}

static void test_serialize_stream_prefix(void **state)
{
    xml_node *f = xml_new(XMLNS_STREAM, "features");
    xml_add_child(f, XMLNS_TLS, "starttls");
    xml_node *mech = xml_add_child(f, XMLNS_SASL, "mechanisms");
    xml_add_text(xml_add_child(mech, NULL, "mechanism"), "SCRAM-SHA-1", 11);
    xml_add_child(f, XMLNS_CLIENT, "inscope");
    assert_xml(f, XMLNS_CLIENT,
               "<stream:features><starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>"
               "<mechanisms xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"><mechanism>SCRAM-SHA-1"
               "</mechanism></mechanisms><inscope/></stream:features>");

    xml_node *err = xml_new(XMLNS_STREAM, "error");
    xml_add_child(err, XMLNS_STREAMS, "not-well-formed");
    assert_xml(err, XMLNS_CLIENT,
               "<stream:error><not-well-formed "
               "xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/></stream:error>");

    /* A stream root declares the prefix and carries its default namespace. */
    xml_node *root = xml_new(XMLNS_STREAM, "stream");
    xml_set_attr(root, "xmlns", XMLNS_SERVER);
    xml_set_attr(root, "xml:lang", "en");
    xml_add_child(root, XMLNS_SERVER, "message");
    assert_xml(root, NULL,
               "<stream:stream xmlns:stream=\"http://etherx.jabber.org/streams\" "
               "xmlns=\"jabber:server\" xml:lang=\"en\"><message/></stream:stream>");
    /* Stray xmlns attributes on ordinary elements are not written: ns rules. */
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(m, "xmlns", "urn:bogus");
    xml_set_attr(m, "xmlns:x", "urn:bogus");
    assert_xml(m, XMLNS_CLIENT, "<message/>");
    xml_free(m);
    xml_free(root);
    xml_free(err);
    xml_free(f);
}

static void test_serialize_escaping(void **state)
{
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(m, "to", "a\"b'c<d>&e");
    xml_node *body = xml_add_child(m, NULL, "body");
    xml_add_text(body, "1 < 2 && 3 > 2 \"q\" 'a'", 22);
    assert_xml(m, XMLNS_CLIENT,
               "<message to=\"a&quot;b&apos;c&lt;d&gt;&amp;e\"><body>1 &lt; 2 &amp;&amp; 3 "
               "&gt; 2 \"q\" 'a'</body></message>");
    xml_node *ns = xml_new("urn:a&\"b", "x");
    assert_xml(ns, "", "<x xmlns=\"urn:a&amp;&quot;b\"/>");
    xml_free(ns);
    xml_free(m);
}

static void test_serialize_namespaced_attrs(void **state)
{
    xml_node *n = xml_new(XMLNS_CLIENT, "x");
    xml_set_attr(n, "xml:lang", "de");
    xml_set_attr(n, "{urn:example:a}one", "1");
    xml_set_attr(n, "{urn:example:b}two", "<2>");
    xml_set_attr(n, "{" XMLNS_XML "}space", "preserve");
    xml_set_attr(n, "{}plain", "p");
    xml_set_attr(n, "{broken", "dropped");
    assert_xml(n, XMLNS_CLIENT,
               "<x xml:lang=\"de\" xmlns:p1=\"urn:example:a\" p1:one=\"1\" "
               "xmlns:p2=\"urn:example:b\" p2:two=\"&lt;2&gt;\" xml:space=\"preserve\" "
               "plain=\"p\"/>");

    /* And they come back from the parser under the same names. */
    char *s = xml_to_string(n, XMLNS_CLIENT);
    xml_node *back = parse(s);
    assert_non_null(back);
    assert_string_equal(xml_get_attr(back, "xml:lang"), "de");
    assert_string_equal(xml_get_attr(back, "{urn:example:a}one"), "1");
    assert_string_equal(xml_get_attr(back, "{urn:example:b}two"), "<2>");
    assert_string_equal(xml_get_attr(back, "xml:space"), "preserve");
    assert_string_equal(xml_get_attr(back, "plain"), "p");
    assert_null(xml_get_attr(back, "{broken"));
    free(s);
    xml_free(back);
    xml_free(n);
}

static void test_round_trip(void **state)
{
    static const char *docs[] = {
        "<message to=\"juliet@example.com\" type=\"chat\" xml:lang=\"en\"><body>Art thou "
        "not Romeo &amp; a Montague?</body><thread>e0ffe42b</thread><x "
        "xmlns=\"jabber:x:data\" type=\"form\"><field var=\"a\"><value>1 &lt; 2</value>"
        "</field></x></message>",
        "<iq type=\"result\" id=\"r1\"><query xmlns=\"jabber:iq:roster\" ver=\"3\"><item "
        "jid=\"a@b\" subscription=\"both\"><group>Friends</group></item></query></iq>",
        "<presence><c xmlns=\"http://jabber.org/protocol/caps\" hash=\"sha-1\" "
        "node=\"n\" ver=\"v\"/><unqualified xmlns=\"\"><inner/></unqualified></presence>",
        /* The xml namespace can only be written with its predeclared prefix. */
        "<message><xml:odd xml:lang=\"en\"><inside/></xml:odd></message>",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        xml_node *n = parse(docs[i]);
        assert_non_null(n);
        assert_string_equal(n->ns, XMLNS_CLIENT);
        assert_xml(n, XMLNS_CLIENT, docs[i]);
        xml_free(n);
    }
}

static void test_copy(void **state)
{
    xml_node *n = parse("<message id=\"1\"><body>hi</body><x xmlns=\"urn:x\"><y a=\"b\">"
                        "t<z/>u</y></x></message>");
    assert_non_null(n);
    xml_node *c = xml_copy(n);
    assert_ptr_not_equal(c, n);
    assert_null(c->parent);
    char *a = xml_to_string(n, XMLNS_CLIENT), *b = xml_to_string(c, XMLNS_CLIENT);
    assert_string_equal(a, b);
    free(b);
    /* Independent: changing the copy leaves the original alone. */
    xml_set_attr(c, "id", "2");
    xml_node *y = xml_child(xml_child(c, "urn:x", "x"), "urn:x", "y");
    assert_non_null(y);
    assert_ptr_equal(y->parent->parent, c);
    assert_ptr_equal(y->last->parent, y);
    xml_add_text(y, "v", 1);
    b = xml_to_string(n, XMLNS_CLIENT);
    assert_string_equal(a, b);
    free(b);
    b = xml_to_string(c, XMLNS_CLIENT);
    assert_string_equal(b, "<message id=\"2\"><body>hi</body><x xmlns=\"urn:x\"><y a=\"b\">"
                           "t<z/>uv</y></x></message>");
    free(a);
    free(b);
    /* Copying a subtree detaches the copy. */
    xml_node *sub = xml_copy(xml_child(n, NULL, "body"));
    assert_null(sub->parent);
    assert_null(sub->next);
    assert_xml(sub, XMLNS_CLIENT, "<body>hi</body>");
    xml_free(sub);
    assert_null(xml_copy(NULL));
    xml_free(c);
    xml_free(n);
}

static void test_detach_append(void **state)
{
    xml_node *p = xml_new("", "p");
    xml_node *a = xml_add_child(p, NULL, "a");
    xml_node *b = xml_add_child(p, NULL, "b");
    xml_node *c = xml_add_child(p, NULL, "c");
    xml_detach(b);
    assert_null(b->parent);
    assert_ptr_equal(a->next, c);
    assert_xml(p, "", "<p><a/><c/></p>");
    xml_detach(c); /* last */
    assert_ptr_equal(p->last, a);
    assert_null(a->next);
    xml_append(p, b);
    assert_xml(p, "", "<p><a/><b/></p>");
    xml_detach(a); /* first */
    assert_ptr_equal(p->children, b);
    xml_detach(b); /* only */
    assert_null(p->children);
    assert_null(p->last);
    xml_detach(b); /* detached already: no-op */
    xml_append(c, a);
    xml_append(c, b);
    xml_append(p, c);
    assert_xml(p, "", "<p><c><a/><b/></c></p>");
    /* Freeing a subtree that was detached leaves the rest intact. */
    xml_detach(c);
    xml_free(c);
    assert_xml(p, "", "<p/>");
    xml_free(p);
    xml_free(NULL);
}

/* A peer can nest tens of thousands of elements within the stanza limit; nothing may
 * recurse on depth. */
static void test_deep_tree(void **state)
{
    enum { DEPTH = 200000 };
    xml_node *top = xml_new("", "d");
    xml_node *n = top;
    for (int i = 0; i < DEPTH; i++)
        n = xml_add_child(n, NULL, "d");
    xml_add_text(n, "x", 1);
    xml_node *c = xml_copy(top);
    char *s = xml_to_string(c, "");
    size_t expect = (DEPTH + 1) * strlen("<d></d>") + 1;
    assert_int_equal(strlen(s), expect);
    assert_memory_equal(s, "<d><d><d>", 9);
    assert_memory_equal(s + (DEPTH + 1) * 3, "x</d></d>", 9);
    free(s);
    xml_free(c);
    xml_free(top);
}

static void test_parse_document(void **state)
{
    xml_node *n = parse("<?xml version='1.0' encoding='utf-8'?>\n<message xml:lang='en' "
                        "to='a@b'><body>a&amp;b&lt;&#x263A;&#65;</body><x xmlns='urn:x'/>"
                        "<![CDATA[<raw>]]></message>\n");
    assert_non_null(n);
    assert_true(xml_is(n, XMLNS_CLIENT, "message"));
    assert_string_equal(xml_get_attr(n, "xml:lang"), "en");
    assert_string_equal(xml_get_attr(n, "to"), "a@b");
    char *t = xml_child_text(n, XMLNS_CLIENT, "body");
    assert_string_equal(t, "a&b<\xE2\x98\xBA" "A");
    free(t);
    assert_non_null(xml_child(n, "urn:x", "x"));
    t = xml_text(n);
    assert_string_equal(t, "<raw>");
    free(t);
    xml_free(n);

    /* default_ns applies to unqualified elements only; NULL means "". */
    n = xml_parse_document("<a><b xmlns='urn:b'><c/></b></a>", 32, NULL, 100);
    assert_non_null(n);
    assert_string_equal(n->ns, "");
    assert_string_equal(n->children->ns, "urn:b");
    assert_string_equal(n->children->children->ns, "urn:b");
    xml_free(n);
    n = xml_parse_document("<a xmlns='jabber:server'/>", 26, XMLNS_CLIENT, 100);
    assert_non_null(n);
    assert_string_equal(n->ns, XMLNS_SERVER);
    xml_free(n);
    /* Only the given length is parsed. */
    n = xml_parse_document("<a/>garbage", 4, XMLNS_CLIENT, 100);
    assert_non_null(n);
    assert_string_equal(n->name, "a");
    xml_free(n);
}

static void test_parse_document_refused(void **state)
{
    static const char *bad[] = {
        "",
        "   ",
        "<a>",
        "<a></b>",
        "<a/><b/>",
        "<a/>junk",
        "<a x='1' x='2'/>",
        "<a>&unknown;</a>",
        "<!DOCTYPE a><a/>",
        ("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 "
         "'&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]><a>&lol2;</a>"),
        "<a><!-- comment --></a>",
        "<!-- comment --><a/>",
        "<a/><!-- trailing -->",
        "<a><?pi data?></a>",
        "<?pi data?><a/>",
        "<?xml version='1.0' encoding='ISO-8859-1'?><a/>",
        "<p:a/>",
        "<a>\xFF</a>",
        "<a>\xC3</a>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        xml_node *n = parse(bad[i]);
        if (n)
            fail_msg("accepted bad document #%zu: %s", i, bad[i]);
    }
    assert_null(xml_parse_document(NULL, 0, XMLNS_CLIENT, 10));
    /* The size limit is inclusive. */
    const char *doc = "<abc>0123456789</abc>";
    size_t len = strlen(doc);
    xml_node *n = xml_parse_document(doc, len, XMLNS_CLIENT, len);
    assert_non_null(n);
    xml_free(n);
    assert_null(xml_parse_document(doc, len, XMLNS_CLIENT, len - 1));
}

/* A document larger than one feed chunk, with text spread over many expat calls. */
static void test_parse_document_large(void **state)
{
    buf b;
    buf_init(&b);
    buf_append_str(&b, "<big>");
    for (int i = 0; i < 5000; i++)
        buf_appendf(&b, "<i n=\"%d\">t&amp;%d</i>", i, i);
    buf_append_str(&b, "</big>");
    xml_node *n = xml_parse_document(b.data, b.len, "urn:big", b.len);
    assert_non_null(n);
    int count = 0;
    for (xml_node *c = xml_child(n, "urn:big", "i"); c; c = xml_next(c, "urn:big", "i"))
        count++;
    assert_int_equal(count, 5000);
    assert_string_equal(xml_get_attr(n->last, "n"), "4999");
    char *t = xml_text(n->last);
    assert_string_equal(t, "t&4999");
    free(t);
    char *s = xml_to_string(n, "urn:big");
    assert_string_equal(s, b.data);
    free(s);
    xml_free(n);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_lookup),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_attrs),
        cmocka_unit_test(test_serialize_namespaces),
        cmocka_unit_test(test_serialize_stream_prefix),
        cmocka_unit_test(test_serialize_escaping),
        cmocka_unit_test(test_serialize_namespaced_attrs),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_detach_append),
        cmocka_unit_test(test_deep_tree),
        cmocka_unit_test(test_parse_document),
        cmocka_unit_test(test_parse_document_refused),
        cmocka_unit_test(test_parse_document_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
