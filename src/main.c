/* main.c - the airlock command: one binary, several subcommands.
 *   serve   run the gateway            check   validate a configuration
 *   keys    create/list/revoke keys    events  list recorded requests
 *   escalations  list/show/resolve     admin-token  create/list/revoke
 *   status  the running gateway's state (admin API)
 *   agents  list/show/permissions      kill, unkill  kill switches
 *   guard   scan texts / evaluate the injection detector
 *   mock    an OpenAI-compatible upstream with fault injection */
#include "cli/cli.h"
#include "config/config.h"
#include "mock/mock.h"
#include "server/gateway.h"
#include "util/log.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void usage(FILE *f)
{
    fputs("usage: airlock <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve  --config FILE                 run the gateway\n"
          "  check  --config FILE                 validate a configuration; exit 1 on error\n"
          "  keys   create --config FILE --agent NAME [--expires 30d] [--label TEXT]\n"
          "         list   --config FILE [--agent NAME] [--json]\n"
          "         revoke --config FILE ID\n"
          "  events list --config FILE [--agent A] [--since 1h] [--limit N] [--json]\n"
          "  escalations list    --config FILE [--status open|resolved|rejected|timeout|all]\n"
          "                      [--agent A] [--limit N] [--json]\n"
          "              show    --config FILE ID [--json]\n"
          "              resolve --config FILE ID (--answer TEXT | --answer-file FILE |\n"
          "                      --reject REASON) [--by NAME]\n"
          "  admin-token create --config FILE --role ROLE [--agent A] [--label L] "
          "[--expires 30d]\n"
          "              list   --config FILE [--json]\n"
          "              revoke --config FILE ID\n"
          "  status --config FILE [--token T] [--json]   the running gateway's state\n"
          "                                      (token default $AIRLOCK_ADMIN_TOKEN)\n"
          "  agents list        --config FILE [--json]   inventory with live figures\n"
          "         show        --config FILE NAME [--json]\n"
          "         permissions --config FILE NAME [--json]\n"
          "  kill   --config FILE (--agent A | --team T | --provider P | --model M | --all)\n"
          "         --reason TEXT [--drain] [--by NAME] [--force]\n"
          "  kill list --config FILE [--json]\n"
          "  unkill --config FILE (--agent A | --team T | --provider P | --model M | --all)\n"
          "         [--by NAME]\n"
          "  guard scan [--config FILE] [--agent NAME]   find PII and injection in stdin lines\n"
          "  guard eval FILE.jsonl... [--threshold X] [--part tune|test|all] [--json]\n"
          "  audit  keygen|verify|proof|consistency|show|erase|purge ...   (airlock audit help)\n"
          "  mock   --listen HOST:PORT [fault flags]   simulated OpenAI-compatible upstream\n"
          "  version\n"
          "\n"
          "--config defaults to $AIRLOCK_CONFIG, then airlock.yaml.\n",
          f);
}

/* The configuration path of a command whose only option is --config/-c:
 * 0 and *path, or 2 (usage error, said on stderr). */
static int config_only(const char *cmd, int argc, char **argv, const char **path /* OUT */)
{
    *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") != 0 && strcmp(argv[i], "-c") != 0) {
            fprintf(stderr, "airlock %s: unknown argument '%s'\n", cmd, argv[i]);
            return 2;
        }
        if (++i >= argc) {
            fprintf(stderr, "airlock %s: --config needs a file\n", cmd);
            return 2;
        }
        *path = argv[i];
    }
    if (!*path) {
        const char *env = getenv("AIRLOCK_CONFIG");
        *path = env && *env ? env : "airlock.yaml";
    }
    return 0;
}

static int cmd_check(int argc, char **argv)
{
    const char *path;
    char err[512];
    if (config_only("check", argc, argv, &path)) return 2;
    al_config_t *c = NULL;
    if (al_config_load(path, &c, err, sizeof err) != AL_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%s: ok (%zu providers, %zu models, %zu routes, %zu agents, sha256 %s)\n", path,
           c->n_providers, c->n_models, c->n_routes, c->n_agents, c->hash);
    al_config_unref(c);
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    const char *path;
    if (config_only("serve", argc, argv, &path)) return 2;
    return al_gateway_run(path);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    int sub_argc = argc - 2;
    char **sub_argv = argv + 2;
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("airlock %s\n", AL_VERSION);
        return 0;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    int rc;
    if (!strcmp(cmd, "serve")) rc = cmd_serve(sub_argc, sub_argv);
    else if (!strcmp(cmd, "check")) rc = cmd_check(sub_argc, sub_argv);
    else if (!strcmp(cmd, "keys")) rc = al_cli_keys(sub_argc, sub_argv);
    else if (!strcmp(cmd, "events")) rc = al_cli_events(sub_argc, sub_argv);
    else if (!strcmp(cmd, "escalations")) rc = al_cli_escalations(sub_argc, sub_argv);
    else if (!strcmp(cmd, "admin-token")) rc = al_cli_admin_token(sub_argc, sub_argv);
    else if (!strcmp(cmd, "status")) rc = al_cli_status(sub_argc, sub_argv);
    else if (!strcmp(cmd, "agents")) rc = al_cli_agents(sub_argc, sub_argv);
    else if (!strcmp(cmd, "kill")) rc = al_cli_kill(sub_argc, sub_argv);
    else if (!strcmp(cmd, "unkill")) rc = al_cli_unkill(sub_argc, sub_argv);
    else if (!strcmp(cmd, "guard")) rc = al_cli_guard(sub_argc, sub_argv);
    else if (!strcmp(cmd, "audit")) rc = al_cli_audit(sub_argc, sub_argv);
    else if (!strcmp(cmd, "mock")) rc = al_mock_main(sub_argc, sub_argv);
    else {
        fprintf(stderr, "airlock: unknown command '%s'\n", cmd);
        usage(stderr);
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
