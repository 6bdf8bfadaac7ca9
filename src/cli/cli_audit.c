/* cli_audit.c - `airlock audit keygen|verify|proof|verify-proof|consistency|
 * verify-consistency|show|erase|purge`, the auditor's commands of
 * notes/audit.md.
 *
 * Each subcommand parses its flags with al__cli_parse, loads the
 * configuration when it needs one (the store path, the audit keys) and
 * calls the library in audit/verify.h.  verify, proof, consistency and show
 * open the store's database read-only with SQLite directly (no schema
 * upgrade, no writer, safe beside a running gateway: every read is one
 * transaction, a consistent snapshot); erase and purge open it read-write
 * with a busy timeout, destroy data keys in one transaction and then record
 * the change (audit.erased / audit.purged) through the store, which appends
 * its audit record.  The offline checks (verify-proof, verify-consistency)
 * need only a verifier key: --key, --key-file, else the configuration's.
 * verify without any key still checks the chain and the roots, but exits 2
 * (a configuration problem) when checkpoint signatures went unchecked.
 * Exit codes: 0 ok, 1 a problem found or the thing asked for not found, 2
 * usage or configuration error; problems on stderr prefixed "audit: ". */
#include "audit/note.h"
#include "audit/seal.h"
#include "audit/verify.h"
#include "cli/cli.h"
#include "util/common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUSY_MS 5000
#define KEYFILE_MAX 4096
#define NOTES_FILE_MAX ((size_t)64 << 20)
#define DETAIL_MAX 511

static void usage_audit(FILE *f)
{
    fputs("usage: airlock audit keygen --out FILE [--name NAME]\n"
          "       airlock audit keygen --master --out FILE\n"
          "       airlock audit verify [--config FILE] [--checkpoint FILE] "
          "[--key VKEY | --key-file FILE]\n"
          "       airlock audit proof --seq N [--checkpoint FILE] [--config FILE]\n"
          "       airlock audit verify-proof [FILE|-] [--key VKEY | --key-file FILE]\n"
          "       airlock audit consistency --old SIZE [--new SIZE] [--config FILE]\n"
          "       airlock audit verify-consistency [FILE|-] [--key VKEY | --key-file FILE]\n"
          "       airlock audit show --seq N [--config FILE]\n"
          "       airlock audit erase (--agent A | --session S | --user U) [--before DATE]\n"
          "       airlock audit purge [--config FILE]\n"
          "\n"
          "verify checks the audit log of the configured store: the hash chain, the\n"
          "stored checkpoints and those of --checkpoint FILE (a witness file); each\n"
          "problem is one line on stderr starting with \"audit: \", exit 1.  The\n"
          "verifier key is --key, else derived from audit.signing_key, else\n"
          "audit.verify_key.  proof and consistency print JSON proof documents that\n"
          "verify-proof and verify-consistency check offline.  show decrypts a\n"
          "record's payload with the configured master keys.  erase destroys the\n"
          "payload keys of the matching records (DATE: YYYY-MM-DD or RFC 3339,\n"
          "strictly before); purge applies audit.retention_days now.  --config\n"
          "defaults to $AIRLOCK_CONFIG, then airlock.yaml.\n",
          f);
}

static int usage_err(void)
{
    usage_audit(stderr);
    return 2;
}

/* Parse argv with flags; 0 to go on, else *ret is the exit code. */
static bool parse(const char *prog, int argc, char **argv, const al__cli_flag_t *flags,
                  size_t nflags, const char **pos, size_t maxpos, size_t *npos, int *ret)
{
    int rc = al__cli_parse(prog, argc, argv, 1, flags, nflags, pos, maxpos, npos);
    if (rc == 1) {
        usage_audit(stdout);
        *ret = 0;
        return false;
    }
    if (rc) {
        *ret = usage_err();
        return false;
    }
    return true;
}

/* The whole of path ("-" = stdin), at most max bytes, NUL-terminated. */
static int read_all(const char *prog, const char *path, size_t max, char **out, size_t *len)
{
    bool in = !strcmp(path, "-");
    FILE *f = in ? stdin : fopen(path, "rb");
    al_buf_t b;
    char chunk[65536];
    *out = NULL;
    *len = 0;
    if (!f) {
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, path, strerror(errno));
        return AL_EIO;
    }
    al_buf_init(&b, max);
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (al_buf_append(&b, chunk, n) != AL_OK) break;
    bool bad = ferror(f);
    if (!in) fclose(f);
    if (bad || b.err) {
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, in ? "stdin" : path,
                b.err == AL_ETOOBIG ? "too large" : bad ? strerror(errno) : al_strerror(b.err));
        al_buf_free(&b);
        return AL_EIO;
    }
    if (!b.p) al_buf_puts(&b, "");
    *out = al_buf_take(&b, len);
    return AL_OK;
}

static bool parse_seq(const char *prog, const char *flag, const char *arg, uint64_t *out)
{
    if (!arg || al_parse_u64(arg, strlen(arg), out) != AL_OK || *out == 0 ||
        *out > (uint64_t)INT64_MAX) {
        fprintf(stderr, "%s: %s needs a whole number >= 1\n", prog, flag);
        return false;
    }
    return true;
}

/* The store's database, opened by SQLite directly. */
static int open_db(const char *prog, const al_config_t *cfg, bool rw, sqlite3 **out)
{
    const char *path = cfg->store.sqlite_path;
    *out = NULL;
    if (!path || !*path) {
        fprintf(stderr, "%s: %s names no store (store.url)\n", prog, cfg->path);
        return AL_EINVAL;
    }
    sqlite3 *db = NULL;
    int flags = rw ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: cannot open the store '%s': %s\n", prog, path,
                db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return AL_EIO;
    }
    sqlite3_busy_timeout(db, BUSY_MS);
    *out = db;
    return AL_OK;
}

/* --- keys ------------------------------------------------------------------- */

/* The verifier: --key text, --key-file (a verifier or signer key file), else
 * the configuration's signing key, else its verify_key.  *have false (and 0)
 * when none is available.  Prints the problem; 0 or 2. */
static int pick_verifier(const char *prog, const char *key, const char *key_file,
                         const al_config_t *cfg, al_verifier_t *v, bool *have)
{
    *have = false;
    if (key && key_file) {
        fprintf(stderr, "%s: give --key or --key-file, not both\n", prog);
        return 2;
    }
    if (key) {
        if (al_note_verifier_parse(key, strlen(key), v) != AL_OK) {
            fprintf(stderr, "%s: --key is not a verifier key (NAME+HASH+BASE64)\n", prog);
            return 2;
        }
        *have = true;
        return 0;
    }
    if (key_file) {
        char *text = NULL;
        size_t len = 0;
        al_signer_t s;
        if (read_all(prog, key_file, KEYFILE_MAX, &text, &len) != AL_OK) return 2;
        int rc = 0;
        if (al_note_verifier_parse(text, len, v) == AL_OK) {
            *have = true;
        } else if (al_note_signer_parse(text, len, &s) == AL_OK) {
            al_note_verifier_of(&s, v);
            explicit_bzero(&s, sizeof s);
            *have = true;
        } else {
            fprintf(stderr, "%s: %s holds no verifier or signer key\n", prog, key_file);
            rc = 2;
        }
        explicit_bzero(text, len);
        free(text);
        return rc;
    }
    if (!cfg) return 0;
    char err[512] = "";
    if (cfg->audit.signing_key) {
        al_signer_t s;
        if (al_note_signer_load(cfg->audit.signing_key, &s, err, sizeof err) == AL_OK) {
            al_note_verifier_of(&s, v);
            explicit_bzero(&s, sizeof s);
            *have = true;
            return 0;
        }
    }
    if (cfg->audit.verify_key) {
        if (al_note_verifier_parse(cfg->audit.verify_key, strlen(cfg->audit.verify_key), v) !=
            AL_OK) {
            fprintf(stderr, "%s: audit.verify_key in %s is not a verifier key\n", prog,
                    cfg->path);
            return 2;
        }
        *have = true;
        return 0;
    }
    if (cfg->audit.signing_key) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 2;
    }
    return 0;
}

static int write_file(const char *prog, const char *path, const char *text, mode_t mode,
                      bool excl)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (excl ? O_EXCL : O_TRUNC), mode);
    if (fd < 0) {
        if (errno == EEXIST)
            fprintf(stderr, "%s: %s exists; not overwriting a key (remove it first)\n", prog,
                    path);
        else fprintf(stderr, "%s: cannot create %s: %s\n", prog, path, strerror(errno));
        return AL_EIO;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    bool ok = off == len && fsync(fd) == 0;
    if (close(fd) != 0) ok = false;
    if (!ok) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
        unlink(path);
        return AL_EIO;
    }
    return AL_OK;
}

static int cmd_keygen(int argc, char **argv)
{
    static const char prog[] = "airlock audit keygen";
    const char *out = NULL, *name = NULL, *config = NULL, *pos[1];
    bool master = false;
    size_t npos;
    int ret;
    const al__cli_flag_t flags[] = {
        {"--out", "-o", &out, NULL},
        {"--name", NULL, &name, NULL},
        {"--master", NULL, NULL, &master},
        {"--config", "-c", &config, NULL},
    };
    if (!parse(prog, argc, argv, flags, AL_ARRAY_LEN(flags), pos, 0, &npos, &ret)) return ret;
    if (!out || !*out) {
        fprintf(stderr, "%s: --out FILE is required\n", prog);
        return 2;
    }
    if (master) {
        char key[80], line[82];
        if (name) {
            fprintf(stderr, "%s: --name is for signer keys, not --master\n", prog);
            return 2;
        }
        if (al_seal_master_keygen(key, sizeof key) != AL_OK) {
            fprintf(stderr, "%s: cannot generate a key\n", prog);
            return 1;
        }
        snprintf(line, sizeof line, "%s\n", key);
        ret = write_file(prog, out, line, 0600, true) == AL_OK ? 0 : 1;
        explicit_bzero(key, sizeof key);
        explicit_bzero(line, sizeof line);
        if (!ret) fprintf(stderr, "wrote a master key to %s (mode 0600)\n", out);
        return ret;
    }
    char skey[512], vkey[512], line[520], pub[4200];
    if (!name) name = "airlock";
    int rc = al_note_keygen(name, skey, sizeof skey, vkey, sizeof vkey);
    if (rc != AL_OK) {
        if (rc == AL_EINVAL)
            fprintf(stderr, "%s: --name '%s': 1..127 printable characters, no '+' or spaces\n",
                    prog, name);
        else fprintf(stderr, "%s: cannot generate a key: %s\n", prog, al_strerror(rc));
        return rc == AL_EINVAL ? 2 : 1;
    }
    if ((size_t)snprintf(pub, sizeof pub, "%s.pub", out) >= sizeof pub) {
        fprintf(stderr, "%s: --out is too long\n", prog);
        return 2;
    }
    snprintf(line, sizeof line, "%s\n", skey);
    ret = 1;
    if (write_file(prog, out, line, 0600, true) != AL_OK) goto done;
    snprintf(line, sizeof line, "%s\n", vkey);
    if (write_file(prog, pub, line, 0644, false) != AL_OK) goto done;
    printf("%s\n", vkey);
    if (fflush(stdout) != 0) goto done;
    fprintf(stderr, "wrote the signer key to %s (mode 0600) and the verifier key to %s\n", out,
            pub);
    ret = 0;
done:
    explicit_bzero(skey, sizeof skey);
    explicit_bzero(line, sizeof line);
    return ret;
}

/* --- verify ----------------------------------------------------------------- */

static void print_problem(void *ud, const char *line)
{
    (void)ud;
    fprintf(stderr, "audit: %s\n", line);
}

static int cmd_verify(int argc, char **argv)
{
    static const char prog[] = "airlock audit verify";
    const char *config = NULL, *cpfile = NULL, *key = NULL, *key_file = NULL, *pos[1];
    size_t npos;
    int ret;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--checkpoint", NULL, &cpfile, NULL},
        {"--key", NULL, &key, NULL},
        {"--key-file", NULL, &key_file, NULL},
    };
    if (!parse(prog, argc, argv, flags, AL_ARRAY_LEN(flags), pos, 0, &npos, &ret)) return ret;
    al_config_t *cfg = NULL;
    sqlite3 *db = NULL;
    char *notes = NULL;
    size_t notes_len = 0;
    al_verifier_t v;
    bool have = false;
    if (al_cli_load_config(al__cli_config_path(config), &cfg) != AL_OK) return 2;
    ret = 2;
    if (pick_verifier(prog, key, key_file, cfg, &v, &have)) goto out;
    if (cpfile && read_all(prog, cpfile, NOTES_FILE_MAX, &notes, &notes_len) != AL_OK) goto out;
    ret = 1;
    if (open_db(prog, cfg, false, &db) != AL_OK) goto out;

    const char *label = cpfile ? strrchr(cpfile, '/') : NULL;
    label = label ? label + 1 : cpfile;
    al_audit_verify_opts_t o = {
        .verifiers = have ? &v : NULL,
        .n_verifiers = have ? 1 : 0,
        .origin = cfg->audit.origin ? cfg->audit.origin : "airlock",
        .notes = notes,
        .notes_len = notes_len,
        .notes_label = label,
        .report = print_problem,
    };
    al_audit_stats_t s;
    int rc = al_audit_verify(db, &o, &s);
    if (rc != AL_OK) {
        fprintf(stderr, "%s: cannot read the audit log in %s: %s\n", prog,
                cfg->store.sqlite_path, rc == AL_EIO ? sqlite3_errmsg(db) : al_strerror(rc));
        goto out;
    }
    char hex[2 * AL_HASH_LEN + 1];
    al_hash_hex(s.root, hex);
    printf("verified %" PRIu64 " records, %" PRIu64 " checkpoints, root %s\n", s.records,
           s.checkpoints, hex);
    if (fflush(stdout) != 0) goto out;
    if (s.problems) {
        ret = 1;
    } else if (s.unsigned_checked) {
        fprintf(stderr,
                "%s: no verifier key (--key, --key-file, audit.signing_key or "
                "audit.verify_key): the signatures of %" PRIu64 " checkpoints were not checked\n",
                prog, s.unsigned_checked);
        ret = 2;
    } else {
        ret = 0;
    }
out:
    sqlite3_close(db);
    free(notes);
    al_config_unref(cfg);
    return ret;
}

/* --- proofs ----------------------------------------------------------------- */

static int emit(al_buf_t *b)
{
    if (b->err) return 1;
    fwrite(b->p, 1, b->len, stdout);
    fputc('\n', stdout);
    return fflush(stdout) != 0 || ferror(stdout) ? 1 : 0;
}

static int cmd_proof(int argc, char **argv)
{
    static const char prog[] = "airlock audit proof";
    const char *config = NULL, *seqs = NULL, *cpfile = NULL, *pos[1];
    size_t npos;
    int ret;
    uint64_t seq = 0;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--seq", NULL, &seqs, NULL},
        {"--checkpoint", NULL, &cpfile, NULL},
    };
    if (!parse(prog, argc, argv, flags, AL_ARRAY_LEN(flags), pos, 0, &npos, &ret)) return ret;
    if (!parse_seq(prog, "--seq", seqs, &seq)) return 2;
    al_config_t *cfg = NULL;
    sqlite3 *db = NULL;
    char *notes = NULL, err[512];
    size_t notes_len = 0, start = 0, nlen = 0, off = 0, s0, l0;
    bool have_note = false;
    al_buf_t out;
    al_buf_init(&out, (size_t)16 << 20);
    if (al_cli_load_config(al__cli_config_path(config), &cfg) != AL_OK) return 2;
    ret = 2;
    if (cpfile) {
        if (read_all(prog, cpfile, NOTES_FILE_MAX, &notes, &notes_len) != AL_OK) goto out;
        while (al_audit_note_next(notes, notes_len, &off, &s0, &l0)) {
            start = s0;
            nlen = l0;
            have_note = true;
        }
        if (!have_note) {
            fprintf(stderr, "%s: %s holds no checkpoint\n", prog, cpfile);
            goto out;
        }
    }
    ret = 1;
    if (open_db(prog, cfg, false, &db) != AL_OK) goto out;
    int rc = al_audit_proof(db, seq, have_note ? notes + start : NULL, nlen, &out, err,
                            sizeof err);
    if (rc != AL_OK) {
        fprintf(stderr, "audit: %s\n", err);
        goto out;
    }
    ret = emit(&out);
out:
    al_buf_free(&out);
    sqlite3_close(db);
    free(notes);
    al_config_unref(cfg);
    return ret;
}

static int cmd_consistency(int argc, char **argv)
{
    static const char prog[] = "airlock audit consistency";
    const char *config = NULL, *olds = NULL, *news = NULL, *pos[1];
    size_t npos;
    int ret;
    uint64_t old_size = 0, new_size = 0;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--old", NULL, &olds, NULL},
        {"--new", NULL, &news, NULL},
    };
    if (!parse(prog, argc, argv, flags, AL_ARRAY_LEN(flags), pos, 0, &npos, &ret)) return ret;
    if (!parse_seq(prog, "--old", olds, &old_size)) return 2;
    if (news && !parse_seq(prog, "--new", news, &new_size)) return 2;
    if (new_size && new_size < old_size) {
        fprintf(stderr, "%s: --new is smaller than --old\n", prog);
        return 2;
    }
    al_config_t *cfg = NULL;
    sqlite3 *db = NULL;
    char err[512];
    al_buf_t out;
    al_buf_init(&out, (size_t)1 << 20);
    if (al_cli_load_config(al__cli_config_path(config), &cfg) != AL_OK) return 2;
    ret = 1;
    if (open_db(prog, cfg, false, &db) != AL_OK) goto out;
    int rc = al_audit_consistency(db, old_size, new_size, &out, err, sizeof err);
    if (rc != AL_OK) {
        fprintf(stderr, "audit: %s\n", err);
        goto out;
    }
    ret = emit(&out);
out:
    al_buf_free(&out);
    sqlite3_close(db);
    al_config_unref(cfg);
    return ret;
}

/* verify-proof and verify-consistency. */
static int cmd_check_doc(int argc, char **argv, bool inclusion)
{
    const char *prog = inclusion ? "airlock audit verify-proof"
                                 : "airlock audit verify-consistency";
    const char *config = NULL, *key = NULL, *key_file = NULL, *pos[1];
    size_t npos = 0;
    int ret;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--key", NULL, &key, NULL},
        {"--key-file", NULL, &key_file, NULL},
    };
    if (!parse(prog, argc, argv, flags, AL_ARRAY_LEN(flags), pos, 1, &npos, &ret)) return ret;
    al_config_t *cfg = NULL;
    al_verifier_t v;
    bool have = false;
    char *doc = NULL, err[512];
    size_t len = 0;
    ret = 2;
    if (!key && !key_file && al_cli_load_config(al__cli_config_path(config), &cfg) != AL_OK)
        return 2;
    if (pick_verifier(prog, key, key_file, cfg, &v, &have)) goto out;
    if (!have) {
        fprintf(stderr, "%s: no verifier key: give --key or --key-file, or set "
                        "audit.signing_key or audit.verify_key\n", prog);
        goto out;
    }
    if (read_all(prog, npos ? pos[0] : "-", AL_AUDIT_PROOF_MAX, &doc, &len) != AL_OK) goto out;
    al_audit_proof_result_t r;
    int rc = inclusion ? al_audit_proof_verify(doc, len, &v, 1, &r, err, sizeof err)
                       : al_audit_consistency_verify(doc, len, &v, 1, &r, err, sizeof err);
    if (rc != AL_OK) {
        fprintf(stderr, "audit: %s\n", err);
        ret = 1;
        goto out;
    }
    if (inclusion)
        printf("ok: record %" PRIu64 " is included in the log of size %" PRIu64
               " signed by %s\n", r.seq, r.size, r.signer);
    else
        printf("ok: the log of size %" PRIu64 " is a prefix of the log of size %" PRIu64
               " signed by %s\n", r.old_size, r.size, r.signer);
    ret = fflush(stdout) != 0 ? 1 : 0;
out:
    free(doc);
    al_config_unref(cfg);
    return ret;
}

/* --- show ------------------------------------------------------------------- */

/* The configuration's master keys; a key that does not load is reported and
 * skipped (records it sealed will not decrypt). */
static al_keyring_t *load_keyring(const char *prog, const al_config_t *cfg)
{
    al_keyring_t *k = NULL;
    if (al_keyring_new(&k) != AL_OK) return NULL;
    for (size_t i = 0; i < cfg->audit.n_master_keys; i++) {
        const al_audit_master_key_t *m = &cfg->audit.master_keys[i];
        char err[512] = "";
        int rc = m->file ? al_keyring_add_file(k, m->id, m->file, err, sizeof err)
                 : m->env ? al_keyring_add_env(k, m->id, m->env, err, sizeof err)
                          : AL_EINVAL;
        if (rc != AL_OK)
            fprintf(stderr, "%s: master key '%s' not loaded: %s\n", prog, m->id,
                    err[0] ? err : al_strerror(rc));
    }
    return k;
}

static int cmd_show(int argc, char **argv)
{
    static const char prog[] = "airlock audit show";
    const char *config = NULL, *seqs = NULL, *pos[1];
    size_t npos;
    int ret;
    uint64_t seq = 0;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--seq", NULL, &seqs, NULL},
    };
    if (!parse(prog, argc, argv, flags, AL_ARRAY_LEN(flags), pos, 0, &npos, &ret)) return ret;
    if (!parse_seq(prog, "--seq", seqs, &seq)) return 2;
    al_config_t *cfg = NULL;
    al_keyring_t *k = NULL;
    sqlite3 *db = NULL;
    char err[512];
    al_buf_t out;
    al_buf_init(&out, (size_t)256 << 20);
    if (al_cli_load_config(al__cli_config_path(config), &cfg) != AL_OK) return 2;
    ret = 1;
    k = load_keyring(prog, cfg);
    if (open_db(prog, cfg, false, &db) != AL_OK) goto out;
    int rc = al_audit_show(db, seq, k, &out, err, sizeof err);
    if (rc != AL_OK) {
        fprintf(stderr, "audit: %s\n", err);
        goto out;
    }
    ret = emit(&out);
out:
    if (out.p) explicit_bzero(out.p, out.len);
    al_buf_free(&out);
    sqlite3_close(db);
    al_keyring_free(k);
    al_config_unref(cfg);
    return ret;
}

/* --- erase and purge ----------------------------------------------------------- */

static bool digits(const char *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* YYYY-MM-DD (midnight UTC) or RFC 3339 (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM))
 * to unix ms.  0 or AL_EINVAL. */
static int parse_date(const char *s, int64_t *ms)
{
    size_t len = strlen(s);
    int y, mo, d, h = 0, mi = 0, se = 0, frac_ms = 0, off_min = 0;
    if (len < 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4, &y) ||
        !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d))
        return AL_EINVAL;
    if (len > 10) {
        size_t i = 19;
        if (len < 20 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
            s[16] != ':' || !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) ||
            !digits(s + 17, 2, &se))
            return AL_EINVAL;
        if (s[i] == '.') {
            size_t f = ++i;
            int scale = 100;
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                frac_ms += (s[i] - '0') * scale;
                scale /= 10;
                i++;
            }
            if (i == f) return AL_EINVAL;
        }
        if (i < len && (s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
            off_min = 0;
        } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
            int oh, om;
            if (!digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
                return AL_EINVAL;
            off_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        } else {
            return AL_EINVAL;
        }
    }
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
        se > 60)
        return AL_EINVAL;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap) return AL_EINVAL;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return AL_EINVAL;
    *ms = ((int64_t)t - (int64_t)off_min * 60) * 1000 + frac_ms;
    return *ms > 0 ? AL_OK : AL_EINVAL;
}

/* "2024-05-01T00:00:00.000Z" */
static void iso_ms(int64_t ms, char *out, size_t outsz)
{
    al_event_fmt_ts(ms, out, outsz);
}

/* Bytes of s that fit in n, not splitting a UTF-8 character. */
static size_t utf8_cut(const char *s, size_t len, size_t n)
{
    if (len <= n) return len;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

/* {"<key>":"<value>"[,"before":"<iso>"],"count":N}, the value shortened to
 * fit the event's detail. */
static void erase_detail(const char *key, const char *val, int64_t before_ms, uint64_t count,
                         char *out, size_t outsz)
{
    al_buf_t b;
    char iso[40];
    size_t vlen = strlen(val), take = vlen;
    al_buf_init(&b, DETAIL_MAX);
    for (;;) {
        al_buf_reset(&b);
        al_buf_printf(&b, "{\"%s\":", key);
        al_buf_json_str(&b, val, take);
        if (before_ms > 0) {
            iso_ms(before_ms, iso, sizeof iso);
            al_buf_printf(&b, ",\"before\":\"%s\"", iso);
        }
        al_buf_printf(&b, ",\"count\":%" PRIu64 "}", count);
        if (!b.err || take == 0) break;
        take = utf8_cut(val, vlen, take / 2);
    }
    snprintf(out, outsz, "%s", b.err ? "{}" : b.p);
    al_buf_free(&b);
}

static int cmd_erase(int argc, char **argv)
{
    static const char prog[] = "airlock audit erase";
    const char *config = NULL, *agent = NULL, *session = NULL, *user = NULL, *before = NULL,
               *pos[1];
    size_t npos;
    int ret;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
        {"--agent", NULL, &agent, NULL},
        {"--session", NULL, &session, NULL},
        {"--user", NULL, &user, NULL},
        {"--before", NULL, &before, NULL},
    };
    if (!parse(prog, argc, argv, flags, AL_ARRAY_LEN(flags), pos, 0, &npos, &ret)) return ret;
    int given = !!agent + !!session + !!user;
    if (given != 1) {
        fprintf(stderr, "%s: give exactly one of --agent, --session, --user\n", prog);
        return usage_err();
    }
    const char *key = agent ? "agent" : session ? "session" : "user";
    const char *val = agent ? agent : session ? session : user;
    if (!*val) {
        fprintf(stderr, "%s: --%s needs a value\n", prog, key);
        return 2;
    }
    al_audit_erase_by_t by = {.agent = agent, .session = session, .user = user};
    if (before && parse_date(before, &by.before_ms) != AL_OK) {
        fprintf(stderr, "%s: --before '%s': expected YYYY-MM-DD or an RFC 3339 time\n", prog,
                before);
        return 2;
    }
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    sqlite3 *db = NULL;
    uint64_t n = 0;
    char actor[96], detail[DETAIL_MAX + 1];
    /* Opening the store first brings its schema up to date. */
    if ((ret = al__cli_open(config, &cfg, &st)) != 0) return ret;
    ret = 1;
    if (open_db(prog, cfg, true, &db) != AL_OK) goto out;
    int rc = al_audit_erase(db, &by, &n);
    if (rc != AL_OK) {
        fprintf(stderr, "%s: cannot erase: %s\n", prog, sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_close(db);
    db = NULL;
    printf("erased %" PRIu64 " payloads\n", n);
    fflush(stdout);
    al__cli_actor(NULL, actor, sizeof actor);
    erase_detail(key, val, by.before_ms, n, detail, sizeof detail);
    rc = al__cli_change_event(st, "audit.erased", actor, "audit erase", agent, NULL, NULL,
                              detail);
    if (rc != AL_OK) {
        fprintf(stderr, "%s: the payloads are erased but the change could not be recorded: %s\n",
                prog, al_strerror(rc));
        goto out;
    }
    ret = 0;
out:
    sqlite3_close(db);
    al_store_close(st);
    al_config_unref(cfg);
    return ret;
}

static int cmd_purge(int argc, char **argv)
{
    static const char prog[] = "airlock audit purge";
    const char *config = NULL, *pos[1];
    size_t npos;
    int ret;
    const al__cli_flag_t flags[] = {
        {"--config", "-c", &config, NULL},
    };
    if (!parse(prog, argc, argv, flags, AL_ARRAY_LEN(flags), pos, 0, &npos, &ret)) return ret;
    al_config_t *cfg = NULL;
    al_store_t *st = NULL;
    sqlite3 *db = NULL;
    uint64_t n = 0;
    char actor[96], detail[DETAIL_MAX + 1], iso[40];
    if ((ret = al__cli_open(config, &cfg, &st)) != 0) return ret;
    uint32_t days = cfg->audit.retention_days;
    if (days == 0) {
        fprintf(stderr, "%s: audit.retention_days is 0 (payloads are kept): nothing to purge\n",
                prog);
        printf("purged 0 payloads\n");
        ret = 0;
        goto out;
    }
    int64_t cutoff = al_wall_ms() - (int64_t)days * 86400000;
    ret = 1;
    if (open_db(prog, cfg, true, &db) != AL_OK) goto out;
    int rc = cutoff > 0 ? al_audit_purge(db, cutoff, &n) : AL_OK;
    if (rc != AL_OK) {
        fprintf(stderr, "%s: cannot purge: %s\n", prog, sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_close(db);
    db = NULL;
    printf("purged %" PRIu64 " payloads\n", n);
    fflush(stdout);
    ret = 0;
    if (n) {
        al__cli_actor(NULL, actor, sizeof actor);
        iso_ms(cutoff, iso, sizeof iso);
        snprintf(detail, sizeof detail,
                 "{\"before\":\"%s\",\"count\":%" PRIu64 ",\"retention_days\":%" PRIu32 "}", iso,
                 n, days);
        rc = al__cli_change_event(st, "audit.purged", actor, "audit purge", NULL, NULL, NULL,
                                  detail);
        if (rc != AL_OK) {
            fprintf(stderr,
                    "%s: the payloads are purged but the change could not be recorded: %s\n",
                    prog, al_strerror(rc));
            ret = 1;
        }
    }
out:
    sqlite3_close(db);
    al_store_close(st);
    al_config_unref(cfg);
    return ret;
}

int al_cli_audit(int argc, char **argv)
{
    if (argc < 1) return usage_err();
    const char *sub = argv[0];
    if (!strcmp(sub, "keygen")) return cmd_keygen(argc, argv);
    if (!strcmp(sub, "verify")) return cmd_verify(argc, argv);
    if (!strcmp(sub, "proof")) return cmd_proof(argc, argv);
    if (!strcmp(sub, "verify-proof")) return cmd_check_doc(argc, argv, true);
    if (!strcmp(sub, "consistency")) return cmd_consistency(argc, argv);
    if (!strcmp(sub, "verify-consistency")) return cmd_check_doc(argc, argv, false);
    if (!strcmp(sub, "show")) return cmd_show(argc, argv);
    if (!strcmp(sub, "erase")) return cmd_erase(argc, argv);
    if (!strcmp(sub, "purge")) return cmd_purge(argc, argv);
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        usage_audit(stdout);
        return 0;
    }
    fprintf(stderr, "airlock audit: unknown subcommand '%s'\n", sub);
    return usage_err();
}
