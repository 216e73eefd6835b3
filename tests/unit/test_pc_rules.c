/* test_pc_rules.c - parley-compliance's rules, config file, check parsing, verdicts and
 * journal (src/compliance): keywords, regular expressions, ethical walls in one-to-one
 * chats and rooms, file rules, the once-a-day disclaimer across restarts, malformed
 * checks, and config errors that name their line (tests named after the bad input). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xml.h"
#include "compliance/check.h"
#include "compliance/conf.h"
#include "compliance/journal.h"
#include "compliance/rules.h"
#include "compliance/verdict.h"

#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET "0123456789abcdef-test-secret"
#define BASE "component = compliance.example.org\nsecret = " SECRET "\n"
/* 2026-05-01T10:00:00Z and the next day. */
#define DAY1 (INT64_C(1777629600) * 1000000)
#define DAY2 (DAY1 + INT64_C(86400) * 1000000)

typedef struct fixture {
    char dir[512];
    char path[600];
    pc_config cfg;
    int loaded;
    journal *j;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/parley-test-pc-XXXXXX";
    char *real = mkdtemp(tmpl) ? realpath(tmpl, NULL) : NULL;
    if (!real)
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s", real);
    free(real);
    snprintf(f->path, sizeof f->path, "%s/pc.conf", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->loaded)
        pc_config_free(&f->cfg);
    journal_close(f->j);
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
}

/* Load BASE + text; returns pc_config_load's result with err filled. */
static int try_load(fixture *f, const char *text, char *err, size_t errlen)
{
    char *all = xasprintf("%s%s", BASE, text);
    write_file(f->path, all, 0600);
    free(all);
    if (f->loaded)
        pc_config_free(&f->cfg);
    f->loaded = 0;
    int rc = pc_config_load(&f->cfg, f->path, err, errlen);
    f->loaded = rc == 0;
    return rc;
}

static void load_ok(fixture *f, const char *text)
{
    char err[1024] = "";
    if (try_load(f, text, err, sizeof err) != 0)
        fail_msg("config refused: %s", err);
}

/* The error for a bad config: it must name the file and line (BASE has 2 lines, so the
 * first line of text is line 3) and contain want. */
static void load_fails(fixture *f, const char *text, int line, const char *want)
{
    char err[1024] = "";
    assert_int_equal(try_load(f, text, err, sizeof err), -1);
    char where[700];
    if (line > 0)
        snprintf(where, sizeof where, "%s:%d: ", f->path, line);
    else
        snprintf(where, sizeof where, "%s: ", f->path);
    if (strncmp(err, where, strlen(where)) != 0 || !strstr(err, want))
        fail_msg("expected '%s...%s', got '%s'", where, want, err);
    assert_null(strstr(err, SECRET));
}

/* ---- checks ---- */

static xml_node *parse(const char *text)
{
    xml_node *n = xml_parse_document(text, strlen(text), XMLNS_COMPONENT, 1 << 20);
    assert_non_null(n);
    return n;
}

/* A check of kind for a message with the given inner XML (body, subject, ...). */
static char *message_check(const char *kind, const char *from, const char *to,
                           const char *inner, const char *extra)
{
    return xasprintf("<check xmlns='urn:parley:compliance:0' kind='%s'>"
                     "<forwarded xmlns='urn:xmpp:forward:0'>"
                     "<message xmlns='jabber:client' from='%s' to='%s' type='chat' id='m1'>"
                     "%s</message></forwarded>%s</check>",
                     kind, from, to, inner, extra ? extra : "");
}

static void judge_xml(fixture *f, const char *check_xml, int due, pc_result *res)
{
    xml_node *n = parse(check_xml);
    pc_check c;
    char why[256];
    if (check_parse(n, &c, why, sizeof why) != 0)
        fail_msg("check refused: %s", why);
    rules_evaluate(f->cfg.rules, &c, due, res);
    check_clear(&c);
    xml_free(n);
}

/* Judge a one-to-one message with body text from -> to. */
static void judge_msg(fixture *f, const char *from, const char *to, const char *body,
                      pc_result *res)
{
    char *inner = xasprintf("<body>%s</body>", body);
    char *x = message_check("message", from, to, inner, NULL);
    judge_xml(f, x, 0, res);
    free(x);
    free(inner);
}

static void expect(const pc_result *res, pc_verdict v, const char *reason_part,
                   const char *body)
{
    if (res->verdict != v)
        fail_msg("verdict %s, expected %s (reason %s)", pc_verdict_name(res->verdict),
                 pc_verdict_name(v), res->reason ? res->reason : "-");
    if (reason_part && (!res->reason || !strstr(res->reason, reason_part)))
        fail_msg("reason '%s' lacks '%s'", res->reason ? res->reason : "(none)", reason_part);
    if (body)
        assert_string_equal(res->body, body);
}

#define A "alice@example.org/laptop"
#define B "bob@example.org"
#define C "carol@example.org"

/* ---- keywords ---- */

static void test_keyword_block_is_case_insensitive_whole_word(void **state)
{
    fixture *f = *state;
    load_ok(f, "keyword insider block \"insider trading terms are not allowed\"\n");
    pc_result r;
    judge_msg(f, A, B, "This is INSIDER info", &r);
    expect(&r, PC_BLOCK, "insider trading terms", NULL);
    assert_non_null(strstr(r.rule, "line 3"));
    pc_result_clear(&r);
    judge_msg(f, A, B, "insiders and outsiders", &r); /* not the whole word */
    expect(&r, PC_ALLOW, NULL, NULL);
    assert_null(r.reason);
    pc_result_clear(&r);
    judge_msg(f, A, B, "(Insider).", &r); /* punctuation is a boundary */
    expect(&r, PC_BLOCK, NULL, NULL);
    pc_result_clear(&r);
}

static void test_keyword_phrase_matches_any_white_space(void **state)
{
    fixture *f = *state;
    load_ok(f, "keyword \"inside  information\" flag\n");
    pc_result r;
    judge_msg(f, A, B, "some Inside\n\t information here", &r);
    expect(&r, PC_ALLOW, "flagged", NULL);
    assert_int_equal(r.flagged, 1);
    pc_result_clear(&r);
    judge_msg(f, A, B, "insideinformation", &r);
    assert_int_equal(r.flagged, 0);
    pc_result_clear(&r);
}

static void test_keyword_folds_unicode_and_respects_unicode_words(void **state)
{
    fixture *f = *state;
    load_ok(f, "keyword \"ärger\" block \"no\"\nkeyword \"$ACME\" block \"ticker\"\n");
    pc_result r;
    judge_msg(f, A, B, "so viel ÄRGER heute", &r);
    expect(&r, PC_BLOCK, "no", NULL);
    pc_result_clear(&r);
    judge_msg(f, A, B, "überärger", &r); /* ü is a letter: no word boundary */
    expect(&r, PC_ALLOW, NULL, NULL);
    pc_result_clear(&r);
    judge_msg(f, A, B, "buy$acme now", &r); /* '$' is no word character */
    expect(&r, PC_BLOCK, "ticker", NULL);
    pc_result_clear(&r);
}

/* ---- regular expressions ---- */

static void test_regex_redacts_every_match(void **state)
{
    fixture *f = *state;
    load_ok(f, "regex \"[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{4}\" redact\n"
               "regex \"secret project [A-Z]+\" redact \"███\"\n");
    pc_result r;
    judge_msg(f, A, B, "card 1234-5678-9012-3456 and 1111-2222-3333-4444 ok", &r);
    expect(&r, PC_MODIFY, "redacted by regex", "card [redacted] and [redacted] ok");
    pc_result_clear(&r);
    judge_msg(f, A, B, "about secret project ZEUS.", &r);
    expect(&r, PC_MODIFY, NULL, "about ███.");
    pc_result_clear(&r);
    judge_msg(f, A, B, "nothing here 1234", &r);
    expect(&r, PC_ALLOW, NULL, NULL);
    pc_result_clear(&r);
}

static void test_regex_redaction_keeps_utf8_whole(void **state)
{
    fixture *f = *state;
    /* "." is one character in C.UTF-8, so é is replaced whole, never half. */
    load_ok(f, "regex \"caf.\" redact \"X\"\nregex \"^start\" block \"anchored\"\n");
    pc_result r;
    judge_msg(f, A, B, "un café, un cafè", &r);
    expect(&r, PC_MODIFY, NULL, "un X, un X");
    pc_result_clear(&r);
    judge_msg(f, A, B, "not at the start", &r); /* ^ anchors at the text's start only */
    expect(&r, PC_ALLOW, NULL, NULL);
    pc_result_clear(&r);
}

static void test_regex_empty_match_is_no_match(void **state)
{
    fixture *f = *state;
    load_ok(f, "regex \"x*\" block \"x\"\n");
    pc_result r;
    judge_msg(f, A, B, "abc", &r);
    expect(&r, PC_ALLOW, NULL, NULL);
    pc_result_clear(&r);
    judge_msg(f, A, B, "abxc", &r);
    expect(&r, PC_BLOCK, NULL, NULL);
    pc_result_clear(&r);
}

static void test_redaction_longer_than_the_limit_blocks(void **state)
{
    fixture *f = *state;
    /* 500 passages each grow by 255 bytes: past the 256 KiB limit. */
    char *rule = xasprintf("regex \"a\" redact \"%0255d\"\n", 0);
    load_ok(f, rule);
    free(rule);
    char *body = xmalloc(200001);
    memset(body, 'b', 200000);
    for (int i = 0; i < 500; i++)
        body[i * 400] = 'a';
    body[200000] = '\0';
    pc_result r;
    judge_msg(f, A, B, body, &r);
    expect(&r, PC_BLOCK, "too long", NULL);
    pc_result_clear(&r);
    free(body);
}

static void test_redaction_of_too_many_passages_blocks(void **state)
{
    fixture *f = *state;
    load_ok(f, "regex \"a\" redact \"[redacted]\"\n");
    /* A match at every character must not cost quadratic time: blocked, quickly. */
    char *body = xmalloc(100001);
    memset(body, 'a', 100000);
    body[100000] = '\0';
    pc_result r;
    judge_msg(f, A, B, body, &r);
    expect(&r, PC_BLOCK, "too many passages", NULL);
    pc_result_clear(&r);
    free(body);
}

static void test_redact_rule_matching_the_subject_blocks(void **state)
{
    fixture *f = *state;
    load_ok(f, "keyword zeus redact\n");
    char *x = message_check("message", A, B, "<subject>Zeus</subject><body>hello</body>",
                            NULL);
    pc_result r;
    judge_xml(f, x, 0, &r);
    expect(&r, PC_BLOCK, "cannot be redacted", NULL);
    pc_result_clear(&r);
    free(x);
}

/* ---- order and scope ---- */

static void test_first_matching_rule_wins(void **state)
{
    fixture *f = *state;
    load_ok(f, "keyword \"public offering\" allow\n"
               "keyword offering block \"offerings are discussed on the phone\"\n"
               "keyword merger flag\n"
               "keyword merger block \"never reached\"\n");
    pc_result r;
    judge_msg(f, A, B, "the public offering and the offering", &r);
    expect(&r, PC_ALLOW, NULL, NULL);
    assert_non_null(strstr(r.rule, "line 3"));
    pc_result_clear(&r);
    judge_msg(f, A, B, "an offering", &r);
    expect(&r, PC_BLOCK, "phone", NULL);
    pc_result_clear(&r);
    judge_msg(f, A, B, "the merger", &r);
    expect(&r, PC_ALLOW, "flagged", NULL);
    assert_int_equal(r.flagged, 1);
    pc_result_clear(&r);
}

static void test_rule_from_group_applies_to_members_only(void **state)
{
    fixture *f = *state;
    load_ok(f, "keyword guarantee block \"no guarantees\" from trading\n"
               "group trading = alice@example.org\n");
    pc_result r;
    judge_msg(f, A, B, "I guarantee it", &r);
    expect(&r, PC_BLOCK, "no guarantees", NULL);
    pc_result_clear(&r);
    judge_msg(f, "bob@example.org/x", C, "I guarantee it", &r);
    expect(&r, PC_ALLOW, NULL, NULL);
    pc_result_clear(&r);
}

/* ---- ethical walls ---- */

#define WALLS                                                                            \
    "group trading = alice@example.org, dave@example.org\n"                              \
    "group research = bob@example.org\n"                                                 \
    "wall trading research\n"

static void test_wall_blocks_one_to_one_both_ways(void **state)
{
    fixture *f = *state;
    load_ok(f, WALLS);
    pc_result r;
    judge_msg(f, A, "Bob@Example.org/phone", "hi", &r); /* JIDs are normalised */
    expect(&r, PC_BLOCK, "ethical wall: trading may not talk to research", NULL);
    assert_non_null(strstr(r.rule, "wall trading research (line 5)"));
    pc_result_clear(&r);
    judge_msg(f, "bob@example.org/x", "dave@example.org", "hi", &r);
    expect(&r, PC_BLOCK, "research may not talk to trading", NULL);
    pc_result_clear(&r);
    judge_msg(f, A, C, "hi", &r); /* carol is behind no wall */
    expect(&r, PC_ALLOW, NULL, NULL);
    pc_result_clear(&r);
    judge_msg(f, A, "dave@example.org", "hi", &r); /* same side */
    expect(&r, PC_ALLOW, NULL, NULL);
    pc_result_clear(&r);
}

static void test_wall_in_rooms_looks_at_every_occupant(void **state)
{
    fixture *f = *state;
    load_ok(f, WALLS);
    const char *room = "desk@conference.example.org";
    char *x = message_check("groupchat", A, room, "<body>hi all</body>",
                            "<occupant jid='alice@example.org'/><occupant jid='carol@example.org'/>"
                            "<occupant jid='bob@example.org'/>");
    pc_result r;
    judge_xml(f, x, 0, &r);
    expect(&r, PC_BLOCK, "members of research are in this room", NULL);
    pc_result_clear(&r);
    free(x);
    x = message_check("groupchat", A, room, "<body>hi all</body>",
                      "<occupant jid='alice@example.org'/><occupant jid='carol@example.org'/>");
    judge_xml(f, x, 0, &r);
    expect(&r, PC_ALLOW, NULL, NULL);
    pc_result_clear(&r);
    free(x);
    /* carol may speak in a room where both sides sit. */
    x = message_check("groupchat", "carol@example.org/x", room, "<body>hi</body>",
                      "<occupant jid='alice@example.org'/><occupant jid='bob@example.org'/>");
    judge_xml(f, x, 0, &r);
    expect(&r, PC_ALLOW, NULL, NULL);
    pc_result_clear(&r);
    free(x);
}

static void test_wall_is_checked_before_an_allow_rule(void **state)
{
    fixture *f = *state;
    load_ok(f, "keyword hello allow\n" WALLS);
    pc_result r;
    judge_msg(f, A, B, "hello", &r);
    expect(&r, PC_BLOCK, "ethical wall", NULL);
    pc_result_clear(&r);
}

/* ---- encrypted messages ---- */

static void test_encrypted_message_only_walls_and_metadata_rules(void **state)
{
    fixture *f = *state;
    load_ok(f, "keyword insider block \"no\"\n"
               "encrypted block \"traders may not encrypt\" from trading\n"
               "disclaimer = Monitored.\n" WALLS);
    const char *omemo = "<body>I sent you an insider OMEMO message</body>"
                        "<encrypted xmlns='eu.siacs.conversations.axolotl'><payload>AA==</payload>"
                        "</encrypted>";
    pc_result r;
    /* carol: the fallback body is no content; no disclaimer on what cannot be modified */
    char *x = message_check("message", "carol@example.org/x", "erin@example.org", omemo, NULL);
    judge_xml(f, x, 1, &r);
    expect(&r, PC_ALLOW, NULL, NULL);
    assert_int_equal(r.disclaimer, 0);
    pc_result_clear(&r);
    free(x);
    x = message_check("message", A, C, omemo, NULL); /* a trader: the encrypted rule */
    judge_xml(f, x, 0, &r);
    expect(&r, PC_BLOCK, "traders may not encrypt", NULL);
    pc_result_clear(&r);
    free(x);
    x = message_check("message", "bob@example.org/x", "dave@example.org", omemo, NULL);
    judge_xml(f, x, 0, &r); /* walls still see who talks to whom */
    expect(&r, PC_BLOCK, "ethical wall", NULL);
    pc_result_clear(&r);
    free(x);
}

/* ---- files ---- */

static char *file_check(const char *name, const char *size, const char *type, const char *sc)
{
    return xasprintf("<check xmlns='urn:parley:compliance:0' kind='file'>"
                     "<file name='%s' size='%s' type='%s' sender='alice@example.org/laptop' "
                     "recipient='carol@example.org' screen-capture='%s' stage='request'/></check>",
                     name, size, type, sc);
}

static void judge_file(fixture *f, const char *name, const char *size, const char *type,
                       const char *sc, pc_verdict v, const char *reason)
{
    char *x = file_check(name, size, type, sc);
    pc_result r;
    judge_xml(f, x, 1, &r);
    expect(&r, v, reason, NULL);
    assert_int_equal(r.disclaimer, 0);
    pc_result_clear(&r);
    free(x);
}

static void test_file_rules_size_type_extension_screen_capture(void **state)
{
    fixture *f = *state;
    load_ok(f, "file_max_size = 10M\n"
               "file_screen_capture = block\n"
               "file ext exe, .BAT block \"executables are not allowed\"\n"
               "file type application/x-msdownload block \"executables are not allowed\"\n"
               "file type image/*, application/pdf allow\n"
               "file ext txt flag\n"
               "file any block \"only images, PDF and text files\"\n");
    judge_file(f, "report.pdf", "18234", "application/pdf", "false", PC_ALLOW, NULL);
    judge_file(f, "photo.JPG", "18234", "Image/JPEG", "false", PC_ALLOW, NULL);
    judge_file(f, "big.pdf", "10485761", "application/pdf", "false", PC_BLOCK,
               "larger than 10M");
    judge_file(f, "big.pdf", "10485760", "application/pdf", "false", PC_ALLOW, NULL);
    judge_file(f, "shot.png", "100", "image/png", "true", PC_BLOCK, "screen captures");
    judge_file(f, "setup.exe", "100", "application/octet-stream", "false", PC_BLOCK,
               "executables");
    judge_file(f, "run.bat", "100", "text/plain", "false", PC_BLOCK, "executables");
    judge_file(f, "innocent.pdf", "100", "application/x-msdownload", "false", PC_BLOCK,
               "executables");
    judge_file(f, "notes.txt", "100", "text/plain; charset=utf-8", "false", PC_ALLOW,
               "flagged");
    judge_file(f, "data.zip", "100", "application/zip", "false", PC_BLOCK, "only images");
}

static void test_file_to_walled_recipient_is_blocked(void **state)
{
    fixture *f = *state;
    load_ok(f, "group trading = alice@example.org\ngroup research = carol@example.org\n"
               "wall trading research\n");
    judge_file(f, "report.pdf", "100", "application/pdf", "false", PC_BLOCK, "ethical wall");
}

static void test_file_without_recipient_is_judged_without_walls(void **state)
{
    fixture *f = *state;
    load_ok(f, "group trading = alice@example.org\ngroup research = carol@example.org\n"
               "wall trading research\nfile_max_size = 1K\n");
    /* An upload that names nobody: walls cannot apply, the file rules still do. */
    pc_result res;
    judge_xml(f, "<check xmlns='urn:parley:compliance:0' kind='file'><file "
                 "sender='alice@example.org/a' name='a.txt' size='10' stage='request'/></check>",
              0, &res);
    expect(&res, PC_ALLOW, NULL, NULL);
    pc_result_clear(&res);
    judge_xml(f, "<check xmlns='urn:parley:compliance:0' kind='file'><file "
                 "sender='alice@example.org/a' name='a.txt' size='4096' stage='request'/></check>",
              0, &res);
    expect(&res, PC_BLOCK, "larger", NULL);
    pc_result_clear(&res);
}

/* ---- the disclaimer, through the journal ---- */

static xml_node *answer(fixture *f, const char *check_xml, int64_t now)
{
    char *iq = xasprintf("<iq type='set' id='srv-1' from='example.org' "
                         "to='compliance.example.org'>%s</iq>", check_xml);
    xml_node *n = parse(iq);
    verdict_ctx vc = {f->cfg.rules, f->j, "compliance.example.org"};
    xml_node *reply = verdict_answer(&vc, n, now);
    xml_free(n);
    free(iq);
    return reply;
}

static void open_journal(fixture *f)
{
    char path[700], err[512];
    snprintf(path, sizeof path, "%s/journal.db", f->dir);
    journal_close(f->j);
    f->j = journal_open(path, err, sizeof err);
    if (!f->j)
        fail_msg("journal: %s", err);
}

/* Send body from alice to carol at now; returns the verdict's action, body in *out. */
static char *verdict_of(fixture *f, const char *body, int64_t now, char **out_body)
{
    char *inner = xasprintf("<body>%s</body>", body);
    char *x = message_check("message", A, C, inner, NULL);
    xml_node *reply = answer(f, x, now);
    free(x);
    free(inner);
    assert_string_equal(xml_get_attr(reply, "type"), "result");
    assert_string_equal(xml_get_attr(reply, "id"), "srv-1");
    assert_string_equal(xml_get_attr(reply, "from"), "compliance.example.org");
    assert_string_equal(xml_get_attr(reply, "to"), "example.org");
    xml_node *v = xml_child(reply, XMLNS_PC_COMPLIANCE, "verdict");
    assert_non_null(v);
    char *action = xstrdup(xml_get_attr(v, "action"));
    if (out_body)
        *out_body = xml_child_text(v, XMLNS_PC_COMPLIANCE, "body");
    xml_free(reply);
    return action;
}

static void expect_verdict(fixture *f, const char *body, int64_t now, const char *action,
                           const char *want_body)
{
    char *got_body = NULL;
    char *got = verdict_of(f, body, now, &got_body);
    if (strcmp(got, action) != 0)
        fail_msg("'%s': verdict %s, expected %s", body, got, action);
    if (want_body)
        assert_string_equal(got_body, want_body);
    free(got);
    free(got_body);
}

static void test_disclaimer_once_per_day_and_across_restarts(void **state)
{
    fixture *f = *state;
    load_ok(f, "disclaimer = \"This message is subject to monitoring.\\nSee policy.\"\n"
               "keyword forbidden block \"no\"\n"
               "keyword zeus redact\n");
    open_journal(f);
    /* A blocked first message is not delivered: the disclaimer stays due. */
    expect_verdict(f, "forbidden", DAY1, "block", NULL);
    expect_verdict(f, "hello zeus", DAY1, "modify",
                   "hello [redacted]\n\nThis message is subject to monitoring.\nSee policy.");
    expect_verdict(f, "second", DAY1 + 1000000, "allow", NULL);
    expect_verdict(f, "zeus again", DAY1 + 2000000, "modify", "[redacted] again");
    /* A restart: the journal remembers. */
    open_journal(f);
    expect_verdict(f, "after restart", DAY1 + 3000000, "allow", NULL);
    /* The next UTC day. */
    expect_verdict(f, "good morning", DAY2, "modify",
                   "good morning\n\nThis message is subject to monitoring.\nSee policy.");
    expect_verdict(f, "and again", DAY2 + 1, "allow", NULL);
}

/* The journal's --journal dump as text (freshly allocated). */
static char *dump_journal(fixture *f)
{
    char path[700], out[700], err[512];
    snprintf(path, sizeof path, "%s/journal.db", f->dir);
    snprintf(out, sizeof out, "%s/dump.txt", f->dir);
    FILE *fp = fopen(out, "w+");
    assert_non_null(fp);
    if (journal_dump(path, fp, err, sizeof err) != 0)
        fail_msg("dump: %s", err);
    long n = ftell(fp);
    rewind(fp);
    char *text = xcalloc(1, (size_t)n + 1);
    assert_int_equal(fread(text, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    return text;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_journal_rows_for_every_check(void **state)
{
    fixture *f = *state;
    load_ok(f, "keyword insider block \"insider terms\"\nkeyword merger flag\n");
    open_journal(f);
    expect_verdict(f, "insider", DAY1, "block", NULL);
    expect_verdict(f, "merger", DAY1, "allow", NULL);
    expect_verdict(f, "hello", DAY1, "allow", NULL);
    char *text = dump_journal(f);
    assert_int_equal(count_lines(text), 4);
    char *rows[4];
    char *save = NULL;
    rows[0] = strtok_r(text, "\n", &save);
    for (int i = 1; i < 4; i++)
        rows[i] = strtok_r(NULL, "\n", &save);
    assert_non_null(strstr(rows[0], "time\tkind\tsender\trecipient\tverdict"));
    assert_non_null(strstr(rows[1], "2026-05-01T10:00:00"));
    assert_non_null(strstr(rows[1], "\tmessage\talice@example.org\tcarol@example.org\tblock\t0\t"
                                    "keyword \"insider\" (line 3)\tinsider terms\t0\tm1\tsrv-1"));
    assert_non_null(strstr(rows[2], "\tallow\t1\tkeyword \"merger\" (line 4)\tflagged by"));
    assert_non_null(strstr(rows[3], "\tallow\t0\t-\t-\t0\tm1\tsrv-1\t-"));
    free(text);
}

/* ---- malformed checks ---- */

static void expect_bad_request(fixture *f, const char *check_xml, const char *why)
{
    xml_node *reply = answer(f, check_xml, DAY1);
    assert_string_equal(xml_get_attr(reply, "type"), "error");
    xml_node *e = xml_child(reply, NULL, "error");
    assert_non_null(e);
    assert_non_null(xml_child(e, XMLNS_STANZAS, "bad-request"));
    char *text = xml_child_text(e, XMLNS_STANZAS, "text");
    if (!text || !strstr(text, why))
        fail_msg("error text '%s' lacks '%s'", text ? text : "(none)", why);
    free(text);
    xml_free(reply);
}

static void test_malformed_checks_get_bad_request(void **state)
{
    fixture *f = *state;
    load_ok(f, "keyword x flag\n");
    open_journal(f);
    expect_bad_request(f, "<check xmlns='urn:parley:compliance:0'/>", "no 'kind'");
    expect_bad_request(f, "<check xmlns='urn:parley:compliance:0' kind='fax'/>",
                       "unknown check kind");
    expect_bad_request(f, "<check xmlns='urn:parley:compliance:0' kind='message'/>",
                       "forwarded");
    char *x = message_check("message", "not a jid@@", B, "<body>x</body>", NULL);
    expect_bad_request(f, x, "invalid 'from'");
    free(x);
    x = message_check("groupchat", A, "room@conference.example.org", "<body>x</body>",
                      "<occupant/>");
    expect_bad_request(f, x, "no 'jid'");
    free(x);
    expect_bad_request(f, "<check xmlns='urn:parley:compliance:0' kind='file'><file "
                          "sender='a@example.org' recipient='b@example.org' size='-1'/></check>",
                       "size");
    expect_bad_request(f, "<other xmlns='urn:x'/>", "no <check");
    /* ... and the journal has a row for each. */
    char *text = dump_journal(f);
    assert_int_equal(count_lines(text), 1 + 7);
    assert_non_null(strstr(text, "\tinvalid\t-\t-\terror\t0\t-\tunknown check kind"));
    free(text);
}

/* ---- config errors, named after the bad input ---- */

static void test_config_bad_regex(void **state)
{
    load_fails(*state, "\n# comment\nregex \"[a-\" block \"x\"\n", 5,
               "bad regular expression \"[a-\"");
}

static void test_config_unknown_action(void **state)
{
    load_fails(*state, "keyword x deny\n", 3, "unknown action 'deny'");
}

static void test_config_block_without_reason(void **state)
{
    load_fails(*state, "keyword x block\n", 3, "block needs a reason");
}

static void test_config_wall_with_unknown_group(void **state)
{
    load_fails(*state, "group a = a@example.org\nwall a sales\n", 4, "unknown group 'sales'");
}

static void test_config_wall_with_one_group_twice(void **state)
{
    load_fails(*state, "wall a a\n", 3, "two different groups");
}

static void test_config_user_on_both_sides_of_a_wall(void **state)
{
    load_fails(*state, "group a = x@example.org\ngroup b = y@example.org\nwall a b\n"
                       "group b = X@example.org\n", 5, "x@example.org is in both a and b");
}

static void test_config_group_member_not_a_jid(void **state)
{
    load_fails(*state, "group a = x@example.org, @@bad\n", 3, "invalid member '@@bad'");
}

static void test_config_group_trailing_comma(void **state)
{
    load_fails(*state, "group a = x@example.org,\n", 3, "trailing ','");
}

static void test_config_unterminated_quote(void **state)
{
    load_fails(*state, "keyword \"abc block \"x\"\n", 3, "unexpected text right after");
    load_fails(*state, "keyword \"abc\n", 3, "unterminated quoted string");
}

static void test_config_unknown_setting(void **state)
{
    load_fails(*state, "sever_port = 5347\n", 3, "unknown setting 'sever_port'");
}

static void test_config_duplicate_setting(void **state)
{
    load_fails(*state, "server_port = 5347\nserver_port = 5348\n", 4,
               "duplicate setting 'server_port' (first set on line 3)");
}

static void test_config_unknown_rule(void **state)
{
    load_fails(*state, "keywrd x flag\n", 3, "unknown rule 'keywrd'");
}

static void test_config_redact_encrypted(void **state)
{
    load_fails(*state, "encrypted redact\n", 3, "encrypted message cannot be redacted");
}

static void test_config_redact_file(void **state)
{
    load_fails(*state, "file ext exe redact\n", 3, "a file cannot be redacted");
}

static void test_config_bad_file_extension(void **state)
{
    load_fails(*state, "file ext ex/e block \"x\"\n", 3, "bad file extension 'ex/e'");
    load_fails(*state, "file type image block \"x\"\n", 3, "bad MIME type 'image'");
}

static void test_config_bad_file_max_size(void **state)
{
    load_fails(*state, "file_max_size = 10X\n", 3, "bad size '10X'");
}

static void test_config_rule_from_unknown_group(void **state)
{
    load_fails(*state, "keyword x flag from sales\n", 3, "unknown group 'sales'");
}

static void test_config_text_after_action(void **state)
{
    load_fails(*state, "keyword x flag loudly\n", 3, "unexpected 'loudly'");
}

static void test_config_tls_off_to_remote_host(void **state)
{
    load_fails(*state, "server_host = parley.example.org\ntls = no\n", 4,
               "tls = no is only allowed to a loopback");
}

static void test_config_short_secret(void **state)
{
    fixture *f = *state;
    char err[1024];
    write_file(f->path, "component = c.example.org\nsecret = short\n", 0600);
    assert_int_equal(pc_config_load(&f->cfg, f->path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":2: the secret must be one word"));
    assert_null(strstr(err, "short"));
}

static void test_config_missing_component(void **state)
{
    fixture *f = *state;
    char err[1024];
    write_file(f->path, "secret = " SECRET "\n", 0600);
    assert_int_equal(pc_config_load(&f->cfg, f->path, err, sizeof err), -1);
    assert_non_null(strstr(err, "missing required setting 'component'"));
}

static void test_config_world_readable_secret(void **state)
{
    fixture *f = *state;
    char err[1024], sf[700];
    snprintf(sf, sizeof sf, "%s/secret", f->dir);
    write_file(sf, SECRET "\n", 0644);
    write_file(f->path, "component = c.example.org\nsecret_file = secret\n", 0644);
    assert_int_equal(pc_config_load(&f->cfg, f->path, err, sizeof err), -1);
    assert_non_null(strstr(err, "accessible to every user"));
    assert_null(strstr(err, SECRET));
    /* Private: read, trailing newline dropped. */
    assert_int_equal(chmod(sf, 0600), 0);
    assert_int_equal(pc_config_load(&f->cfg, f->path, err, sizeof err), 0);
    f->loaded = 1;
    assert_string_equal(f->cfg.secret, SECRET);
    pc_config_free(&f->cfg);
    f->loaded = 0;
    /* An inline secret in a world-readable file is refused too. */
    write_file(f->path, BASE, 0644);
    assert_int_equal(pc_config_load(&f->cfg, f->path, err, sizeof err), -1);
    assert_non_null(strstr(err, "accessible to every user"));
}

static void test_config_defaults_and_settings(void **state)
{
    fixture *f = *state;
    load_ok(f, "server_host = localhost   # trailing comment\n"
               "server_port = 15347\ntls = no\nserver_name = parley.example.org\n"
               "journal = j/journal.db\nlog_level = debug\nreconnect_max = 5\n"
               "group x = a@example.org\n"
               "  # indented comment\n");
    assert_string_equal(f->cfg.server_host, "localhost");
    assert_int_equal(f->cfg.server_port, 15347);
    assert_int_equal(f->cfg.tls, 0);
    assert_string_equal(f->cfg.server_name, "parley.example.org");
    assert_string_equal(f->cfg.component, "compliance.example.org");
    char want[700];
    snprintf(want, sizeof want, "%s/j/journal.db", f->dir);
    assert_string_equal(f->cfg.journal, want);
    assert_int_equal(f->cfg.log_level, PLOG_DEBUG);
    assert_int_equal(f->cfg.reconnect_max, 5);
    load_ok(f, "");
    assert_string_equal(f->cfg.server_host, "127.0.0.1");
    assert_string_equal(f->cfg.server_name, "127.0.0.1");
    assert_int_equal(f->cfg.server_port, 5347);
    assert_int_equal(f->cfg.tls, 1);
    assert_null(f->cfg.ca_file);
    snprintf(want, sizeof want, "%s/parley-compliance.db", f->dir);
    assert_string_equal(f->cfg.journal, want);
}

int main(void)
{
    /* As parley-compliance's main does: regular expressions see UTF-8 characters. */
    setlocale(LC_CTYPE, "C.UTF-8");
    log_set_level(PLOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keyword_block_is_case_insensitive_whole_word, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyword_phrase_matches_any_white_space, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyword_folds_unicode_and_respects_unicode_words, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regex_redacts_every_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regex_redaction_keeps_utf8_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regex_empty_match_is_no_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redaction_longer_than_the_limit_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redaction_of_too_many_passages_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redact_rule_matching_the_subject_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_matching_rule_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_from_group_applies_to_members_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wall_blocks_one_to_one_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wall_in_rooms_looks_at_every_occupant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wall_is_checked_before_an_allow_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encrypted_message_only_walls_and_metadata_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_rules_size_type_extension_screen_capture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_to_walled_recipient_is_blocked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_without_recipient_is_judged_without_walls, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_disclaimer_once_per_day_and_across_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_rows_for_every_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_checks_get_bad_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_bad_regex, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_unknown_action, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_block_without_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_wall_with_unknown_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_wall_with_one_group_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_user_on_both_sides_of_a_wall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_group_member_not_a_jid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_group_trailing_comma, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_unterminated_quote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_unknown_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_duplicate_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_unknown_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_redact_encrypted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_redact_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_bad_file_extension, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_bad_file_max_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_rule_from_unknown_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_text_after_action, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_tls_off_to_remote_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_short_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_missing_component, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_world_readable_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_defaults_and_settings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
