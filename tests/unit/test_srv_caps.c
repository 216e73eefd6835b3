/* test_srv_caps.c - the XEP-0115 verification string (src/server/caps.h), against the
 * specification's own examples (section 5.2 and 5.3), and the answers it must refuse to
 * vouch for (section 5.4). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/caps.h"

#include <string.h>

static xml_node *parse(const char *text)
{
    xml_node *n = xml_parse_document(text, strlen(text), "", 65536);
    assert_non_null(n);
    return n;
}

static void expect_ver(const char *query, const char *hash, const char *want)
{
    xml_node *q = parse(query);
    char ver[128] = "";
    int rc = caps_verification_string(q, hash, ver, sizeof ver);
    xml_free(q);
    if (!want) {
        assert_int_equal(rc, -1);
        return;
    }
    assert_int_equal(rc, 0);
    assert_string_equal(ver, want);
}

#define DISCO "<query xmlns='http://jabber.org/protocol/disco#info'>"

static void test_simple_example(void **state)
{
    (void)state;
    expect_ver(DISCO "<identity category='client' name='Exodus 0.9.1' type='pc'/>"
                     "<feature var='http://jabber.org/protocol/disco#info'/>"
                     "<feature var='http://jabber.org/protocol/caps'/>"
                     "<feature var='http://jabber.org/protocol/muc'/>"
                     "<feature var='http://jabber.org/protocol/disco#items'/></query>",
               "sha-1", "QgayPKawpkPSDYmwT/WM94uAlu0=");
}

static void test_complex_example(void **state)
{
    (void)state;
    expect_ver(DISCO "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
                     "<identity xml:lang='el' category='client' name='\xce\xa8 0.11' type='pc'/>"
                     "<feature var='http://jabber.org/protocol/caps'/>"
                     "<feature var='http://jabber.org/protocol/disco#info'/>"
                     "<feature var='http://jabber.org/protocol/disco#items'/>"
                     "<feature var='http://jabber.org/protocol/muc'/>"
                     "<x xmlns='jabber:x:data' type='result'>"
                     "<field var='FORM_TYPE' type='hidden'>"
                     "<value>urn:xmpp:dataforms:softwareinfo</value></field>"
                     "<field var='ip_version'><value>ipv4</value><value>ipv6</value></field>"
                     "<field var='os'><value>Mac</value></field>"
                     "<field var='os_version'><value>10.5.1</value></field>"
                     "<field var='software'><value>Psi</value></field>"
                     "<field var='software_version'><value>0.11</value></field>"
                     "</x></query>",
               "sha-1", "q07IKJEyjvHSyhy//CH0CxmKi8w=");
}

static void test_ill_formed(void **state)
{
    (void)state;
    /* Duplicate feature, duplicate identity, two forms of one FORM_TYPE: never vouched for. */
    expect_ver(DISCO "<identity category='client' type='pc'/>"
                     "<feature var='a'/><feature var='a'/></query>",
               "sha-1", NULL);
    expect_ver(DISCO "<identity category='client' type='pc'/>"
                     "<identity category='client' type='pc'/></query>",
               "sha-1", NULL);
    expect_ver(DISCO "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' "
                     "type='hidden'><value>urn:x</value></field></x>"
                     "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' "
                     "type='hidden'><value>urn:x</value></field></x></query>",
               "sha-1", NULL);
    /* An unknown hash cannot be checked. */
    expect_ver(DISCO "<feature var='a'/></query>", "md5", NULL);
    expect_ver(DISCO "<feature var='a'/></query>", NULL, NULL);
}

static void test_other_hashes_and_order(void **state)
{
    (void)state;
    /* The order of the answer does not matter; sha-256 is supported. */
    char a[128], b[128];
    xml_node *q1 = parse(DISCO "<feature var='b'/><feature var='a'/>"
                               "<identity category='client' type='pc'/></query>");
    xml_node *q2 = parse(DISCO "<identity category='client' type='pc'/>"
                               "<feature var='a'/><feature var='b'/></query>");
    assert_int_equal(caps_verification_string(q1, "sha-256", a, sizeof a), 0);
    assert_int_equal(caps_verification_string(q2, "sha-256", b, sizeof b), 0);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 44); /* 32 bytes in base64 */
    /* Too small an output buffer is an error, not a truncation. */
    assert_int_equal(caps_verification_string(q1, "sha-256", a, 10), -1);
    xml_free(q1);
    xml_free(q2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_example),
        cmocka_unit_test(test_complex_example),
        cmocka_unit_test(test_ill_formed),
        cmocka_unit_test(test_other_hashes_and_order),
    };
    return cmocka_run_group_tests_name("caps", tests, NULL, NULL);
}
