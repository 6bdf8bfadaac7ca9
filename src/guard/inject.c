/* inject.c - the prompt-injection and jailbreak detector.  Vectorscan only
 * finds anchors: pure literals (one pattern each, caseless, byte mode),
 * trigger words or short phrases ("instructions", "vergiss", "you are
 * now"), plus a few small raw expressions (chat-template tokens, line-start
 * "System:", CJK verbs).  Each anchor belongs to a group whose rules are
 * checked by a small word matcher around the hit: the text on each side is
 * cut into at most 12 lower-cased word and punctuation tokens within 160
 * bytes, and a rule is a list of steps backwards and forwards, each a word
 * list (words, prefixes, phrases, any word) with a repeat count, matched
 * with backtracking.  So "ignore all previous instructions" is the object
 * "instructions" with a qualifier, determiners and an override verb before
 * it.  A rule that matches records evidence for its family (hit count,
 * strongest weight), once per scan.  This keeps the database cheap to
 * compile (about 0.1 s for the whole set instead of 2+ s of long regexes)
 * and fast to scan.  al_inject_end then adds what no pattern sees: Unicode
 * tag characters (decoded to ASCII and rescanned), zero-width and bidi
 * controls (the text is rescanned with them removed), base64 blobs of 24+
 * characters that decode to printable text (rescanned, nested at most
 * twice), special tokens counted across the text, and long repeated runs.
 * Evidence found only inside a decoded payload also counts for the
 * encoding family.  The score is 1 - prod(1 - s_f * (1 - d)) over the
 * families, where s_f is the family's strongest weight raised a little by
 * further distinct hits and d is how strongly the text reads as talking
 * about injection rather than doing it (quoted attack phrases, "prompt
 * injection", "for example", questions, code).  The weights and the
 * measured figures are in notes/injection.md.  Byte mode rather than
 * HS_FLAG_UTF8: Vectorscan's results on invalid UTF-8 are undefined in
 * UTF-8 mode and the text is hostile; byte-mode literals match UTF-8 text
 * just the same. */
#include "guard/inject.h"
#include "util/common.h"

#include <hs.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* --- word lists ------------------------------------------------------------ */

/* Entries are lower case; "x*" is a prefix, "a b" a phrase of consecutive
 * words, "*" any word, "^" / "$" the start / end of the text, "\n" a line
 * break (line breaks are skipped unless a step names them), punctuation is
 * one token per character. */
#define NEG4(v) "do not " v, "don't " v, "never " v, "no longer " v
#define L_VCORE                                                                           \
    "ignore", "ignoring", "disregard", "disregarding", "forget", "forgot", "forgetting",   \
    "override", "overriding", "bypass", "abandon", "dismiss", "neglect", "disobey",        \
    "discard", "scrap", "ditch", "unlearn", "drop", "skip", "set aside", "put aside",      \
    "let go of", "throw out", "throw away", "pay no attention to", "pay no heed to",        \
    "stop following", "stop obeying", "stop listening to", NEG4("follow"), NEG4("obey"),  \
    NEG4("listen to"), NEG4("adhere to"), NEG4("comply with")
#define L_VEXT L_VCORE, "remove", "delete", "erase", "clear", "wipe", "reset", "overwrite", "leave behind"
#define L_DET                                                                             \
    "about", "all", "any", "every", "each", "of", "the", "your", "my", "these", "those", "this",    \
    "that", "their", "its", "our", "other", "whole", "entire", "complete", "full", "such", \
    "what", "whatever", "everything", "and"
#define L_DET_NOTMINE                                                                     \
    "all", "any", "every", "each", "of", "the", "your", "these", "those", "this", "that",  \
    "their", "its", "other", "whole", "entire", "complete", "full", "such", "everything", "and"
#define L_ADJ                                                                             \
    "previous", "previously", "prior", "preceding", "above", "aforementioned",             \
    "afore-mentioned", "above-mentioned", "abovementioned", "earlier", "former",           \
    "foregoing", "initial", "original", "old", "past", "existing", "given", "provided",     \
    "last", "system", "default", "current", "preset", "underlying", "hidden", "built-in",   \
    "builtin", "programmed", "programed", "received"
#define L_OBJ                                                                             \
    "instruction", "instructions", "instructs", "direction", "directions", "directive",    \
    "directives", "orders", "command", "commands", "rules", "guideline", "guidelines",     \
    "guidance", "prompt", "prompts", "programming", "constraints", "restrictions", "policy", \
    "policies", "training", "safeguards", "protocols", "principles", "limitations",        \
    "filters", "task", "tasks", "assignment", "assignments", "conditioning", "parameters",  \
    "thoughts", "knowledge", "memories"
#define L_OBJ_WEAK "message", "messages", "text", "texts", "request", "requests", "email", \
    "emails", "answer", "answers", "response", "responses"
#define L_OBJ_CTX "context", "input", "inputs", "information", "conversation"
#define L_SENT "^", ".", "!", "?", "\n"

#define L_V_DE                                                                            \
    "ignorier", "ignoriere", "ignorieren", "ignoriert", "ignoriere sie", "ignorieren sie", \
    "vergiss", "vergesst", "vergessen sie", "missachte", "missachten", "missachtet",       \
    "missachten sie", "übergehe", "verwirf", "verwerfen sie", "streiche", "befolge nicht", \
    "beachte nicht", "hör nicht auf", "höre nicht auf", "hört nicht auf",                  \
    "hör nicht mehr auf", "höre nicht mehr auf", "lass", "lassen sie", "setze dich über", \
    "setzen sie sich über"
#define L_ADV_DE "jetzt", "nun", "bitte", "einfach", "sofort", "mal", "ab sofort"
#define L_DET_DE "alle", "alles", "all", "die", "der", "den", "das", "deine", "deinen",     \
    "dein", "ihre", "ihren", "sämtliche", "jegliche", "jede", "meine", "diese", "obige", "obigen"
#define L_ADJ_DE                                                                          \
    "vorherige", "vorherigen", "vorhergehende", "vorhergehenden", "vorangehende",          \
    "vorangehenden", "vorangegangene", "vorangegangenen", "bisherige", "bisherigen",       \
    "frühere", "früheren", "fruehere", "frueheren", "urspruenglichen", "vorige", "vorigen", "obige", "obigen", "ursprüngliche",        \
    "ursprünglichen", "alten", "gegebenen", "erhaltenen", "oben genannten",                \
    "zuvor gegebenen", "zuvor erhaltenen", "zuvor genannten"
#define L_OBJ_DE                                                                          \
    "anweisung", "anweisungen", "instruktion", "instruktionen", "befehl", "befehle",       \
    "aufgabe", "aufgaben", "aufträge", "auftraege", "auftrag", "anordnung", "anordnungen", "regeln",    \
    "vorgaben", "richtlinien", "informationen", "angaben", "prompt", "prompts",            \
    "einschränkungen", "vorschriften", "eingaben"
#define L_V_FR                                                                            \
    "ignore", "ignorez", "ignorer", "oublie", "oubliez", "oublier", "néglige", "négligez", \
    "écarte", "écartez", "outrepasse", "outrepassez", "contourne", "contournez",           \
    "laisse de côté", "laissez de côté", "fais abstraction de", "fais abstraction d'",     \
    "faites abstraction de", "faites abstraction d'", "fais-abstraction de",               \
    "ne tiens pas compte de", "ne tiens pas compte d'", "ne tiens plus compte de",         \
    "ne tiens plus compte d'", "ne tenez pas compte de", "ne tenez pas compte d'",         \
    "ne tenez plus compte de", "ne tenez plus compte d'", "ne tiens pas compte",             \
    "ne tiens plus compte", "ne tenez pas compte", "ne tenez plus compte", "fais abstraction", \
    "faites abstraction", "n' obéis plus à", "ne suis plus",                                  \
    "ne respecte plus", "ne respectez plus", "ne suivez plus"
#define L_DET_FR "toutes", "tous", "tout", "les", "tes", "vos", "mes", "ces", "la", "le",   \
    "l'", "ta", "votre", "ton", "de", "des", "d'"
#define L_ADJ_FR                                                                          \
    "précédent", "précédente", "précédents", "précédentes", "antérieur", "antérieure",     \
    "antérieurs", "antérieures", "ci-dessus", "initial", "initiale", "initiales", "initiaux", \
    "original", "originale", "originales", "originaux", "d' origine", "ancien", "ancienne", \
    "anciens", "anciennes", "préalable", "préalables", "reçu", "reçue", "reçus", "reçues", \
    "donné", "donnée", "donnés", "données", "du système", "système"
#define L_OBJ_FR "instruction", "instructions", "consigne", "consignes", "règles",         \
    "directive", "directives", "ordres", "commandes", "indications", "prompt", "prompts",  \
    "tâches", "contraintes", "restrictions", "directions"
#define L_V_ES                                                                            \
    "ignora", "ignore", "ignoren", "ignorar", "ignorad", "olvida", "olvide", "olviden",    \
    "olvidar", "olvidad", "olvídate de", "olvídese de", "olvídense de", "olvidaos de",     \
    "descarta", "descarte", "descartar", "omite", "omita", "omitir", "haz caso omiso a",    \
    "haz caso omiso de", "no sigas", "no siga", "no sigan", "no hagas caso a",             \
    "no hagas caso de", "no obedezcas", "no obedezca", "desobedece", "sáltate", "salta"
#define L_DET_ES "todas", "todos", "todo", "las", "los", "tus", "sus", "mis", "estas",      \
    "esas", "la", "el", "cualquier", "de"
#define L_OBJ_ES "instrucciones", "instrucción", "indicaciones", "órdenes", "ordenes",      \
    "reglas", "directrices", "directivas", "normas", "comandos", "tareas", "restricciones", \
    "pautas", "prompts", "prompt"
#define L_ADJ_ES "anteriores", "previas", "previos", "de arriba", "iniciales", "originales", \
    "dadas", "recibidas", "del sistema", "precedentes", "pasadas", "antiguas"
#define L_OBJ_OTHER                                                                       \
    "istruzioni", "regole", "indicazioni", "direttive", "ordini", "comandi", "instruções", \
    "instrucoes", "regras", "ordens", "diretrizes", "orientações", "instructies", "regels", \
    "opdrachten", "aanwijzingen", "instrukcije", "upute", "naredbe", "pravila",            \
    "instrukcje", "polecenia", "zasady", "инструкции", "указания", "правила", "команды",    \
    "промпт", "talimatları", "kuralları", "komutları", "instruksi", "perintah", "aturan"

#define L_EVERB                                                                           \
    "reveal", "print", "show", "display", "output", "repeat", "recite", "tell", "give",    \
    "share", "disclose", "leak", "expose", "dump", "echo", "copy", "paste", "write", "type", \
    "list", "spell-check", "spellcheck", "translate", "summarize", "summarise", "return",  \
    "provide", "send", "read", "state", "quote", "reproduce"
#define L_EFILL                                                                           \
    "me", "us", "back", "out", "down", "all", "of", "the", "your", "its", "my", "whole",   \
    "exactly", "verbatim", "everything", "entire", "full", "complete", "original", "first", \
    "initial", "previous", "hidden"
#define L_EADJ                                                                            \
    "initial", "original", "hidden", "secret", "internal", "first", "pre", "full", "entire", \
    "complete", "underlying", "exact", "developer", "custom", "starting", "beginning",     \
    "confidential"
#define L_JNOUN                                                                           \
    "guidelines", "restrictions", "filter", "filters", "limitations", "boundaries",        \
    "principles", "constraints", "policy", "policies", "rules", "standards",               \
    "considerations", "code", "values", "obligations", "safeguards", "concerns",           \
    "implications", "confines"
#define L_J5N "restrictions", "limitations", "censorship", "boundaries", "morals", "ethics", \
    "constraints", "compass", "conscience"
#define L_MODE_ADJ "god", "jailbreak", "jailbroken", "dan", "unrestricted", "unfiltered", "evil", \
    "chaos", "opposite", "uncensored"
#define L_UNADJ "unfiltered", "uncensored", "unrestricted", "unchained", "unbound",         \
    "unshackled", "limitless", "jailbroken"
#define L_BADADJ "amoral", "unethical", "immoral"

/* --- anchor groups: one Vectorscan literal set each ------------------------ */

static const char *const A_OBJ[] = {L_OBJ, NULL};
static const char *const A_QUAL[] = {"above", "foregoing", "preceding", "aforementioned",
                                     "previous", "prior", NULL};
static const char *const A_EVERYTHING[] = {"everything", NULL};
static const char *const A_ROLEN[] = {
    "new instruction", "new instructions", "new task", "new rules", "new orders",
    "new directive", "new objective", "new goal", "new mission", "new purpose",
    "new role", "real instruction", "real instructions", "real task", "real rules",
    "real orders", "real directive", "real objective", "real goal", "real mission",
    "real purpose", "real role", "actual instruction", "actual instructions", "actual task",
    "actual rules", "actual orders", "actual directive", "actual objective", "actual goal",
    "actual mission", "actual purpose", "actual role", "updated instruction", "updated instructions",
    "updated task", "updated rules", "updated orders", "updated directive", "updated objective",
    "updated goal", "updated mission", "updated purpose", "updated role", "true instruction",
    "true instructions", "true task", "true rules", "true orders", "true directive",
    "true objective", "true goal", "true mission", "true purpose", "true role",
    "only instruction", "only instructions", "only task", "only rules", "only orders",
    "only directive", "only objective", "only goal", "only mission", "only purpose",
    "only role", "next instruction", "next instructions", "next task", "next rules",
    "next orders", "next directive", "next objective", "next goal", "next mission",
    "next purpose", "next role",
    NULL};
static const char *const A_FOCUS[] = {"focus", "concentrate", NULL};
static const char *const A_MEMORY[] = {"your memory", "your context", "your conversation",
                                       "your instructions", "your programming", "your rules",
                                       NULL};
static const char *const A_STAFF_AT[] = {
    "developer at", "developer from", "developer of", "developer for", "programmer at",
    "programmer from", "engineer at", "engineer from", "employee at", "employee of",
    "researcher at", "researcher from", "admin at", NULL};
static const char *const A_STAFF[] = {"your developer", "your creator", "your administrator", "your admin",
    "your owner", "your master", "your programmer", "your maker", NULL};
static const char *const A_OVERRIDE_N[] = {"override", NULL};
static const char *const A_DOCS[] = {"documents", "articles", "artikel", "artikels", "sources",
                                     NULL};
static const char *const A_ANSWER_BY[] = {"answer according to", "answer based on",
                                          "answer using", "question according to",
                                          "question based on", "question using", NULL};
static const char *const A_STOP[] = {"stop", "stopp", "halt", "attention", "achtung", NULL};
static const char *const A_ENOUGH[] = {
    "that is enough", "that is done", "that is it", "that's enough", "that's done",
    "that's it", "that was enough", "that was done", "that was it", "this is enough",
    "this is done", "this is it", "das ist genug", "das ist erledigt", "das war genug",
    "das war erledigt", "das genügt",
    NULL};
static const char *const A_NEWTASK[] = {"new challenge", "new task", "new assignment",
                                        "neue herausforderung", "neue aufgabe", NULL};
static const char *const A_HOERE[] = {"höre nicht auf", "hör nicht auf", "hört nicht auf",
                                      "hören sie nicht auf", "höre nicht mehr auf",
                                      "hör nicht mehr auf", NULL};
static const char *const A_COMES[] = {"now comes", "now come", "here comes", "here come",
                                      "now follows", "here follows", "now follow",
                                      "jetzt kommt", "nun kommt", "jetzt folgt", "nun folgt",
                                      NULL};
static const char *const A_VRARE[] = {"ignore", "ignoring", "disregard", "disregarding", "forget",
                                      "forgetting", "override", "bypass", "abandon", "dismiss",
                                      "neglect", "disobey", "discard", "unlearn", "set aside",
                                      "put aside", "let go of", "throw out", "throw away",
                                      "pay no attention to", "pay no heed to", "stop following",
                                      "stop obeying", "stop listening to", NEG4("follow"),
                                      NEG4("obey"), NEG4("listen to"), NEG4("adhere to"),
                                      NEG4("comply with"), NULL};
static const char *const A_GESAGT[] = {"gesagt", NULL};
static const char *const A_GELTEN[] = {"gelten", NULL};
static const char *const A_OBJ_DE[] = {L_OBJ_DE, NULL};
static const char *const A_V_DE[] = {"vergiss", "vergesst", "vergessen", "ignoriere",
                                     "ignorieren", "ignorier", NULL};
static const char *const A_DE_MISC[] = {"abweichend", "folgen", "konzentriere", "konzentrieren",
                                        NULL};
static const char *const A_OBJ_FR[] = {L_OBJ_FR, NULL};
static const char *const A_TOUT[] = {"tout", NULL};
static const char *const A_DIT[] = {"je t' ai dit", "je vous ai dit", "j' ai dit", NULL};
static const char *const A_OBJ_ES[] = {L_OBJ_ES, NULL};
static const char *const A_ES_MISC[] = {"dije", "dicho", "todo", NULL};
static const char *const A_OBJ_OTHER[] = {L_OBJ_OTHER, NULL};
static const char *const A_OTHER_V[] = {"تجاهل", "abaikan", "lupakan", "bỏ", "quên", NULL};
static const char *const A_HI[] = {"निर्देशों", "निर्देश", NULL};
/* jailbreak */
static const char *const A_ANYTHING[] = {"anything", NULL};
static const char *const A_MODE[] = {"mode", NULL};
static const char *const A_ETH[] = {"ethical", "moral", "safety", "openai", "openai's", "legal",
                                    "usage", NULL};
static const char *const A_J5N[] = {L_J5N, NULL};
static const char *const A_NOW[] = {"you are now", "now you are", "from now on", "you will now",
                                    NULL};
static const char *const A_WHOSE_RULES[] = {
    "your rules", "its rules", "ai rules", "ai's rules", "openai's rules", "openai rules",
    "chatgpt's rules", "your guidelines", "its guidelines", "openai's guidelines",
    "openai guidelines", "chatgpt's guidelines", "your restrictions", "its restrictions",
    "openai's restrictions", "your programming", "its programming", "openai's policy",
    "openai policy", "openai's policies", "openai policies", "chatgpt's policies", NULL};
static const char *const A_GOING[] = {"you're going", "you are going", NULL};
static const char *const A_CHARACTER[] = {
    "in character", "break character", "breaking character", "of character", "in role",
    "in your role", "in the role", "in their role", "in their roles", "in your roles",
    "of the role", "of their role", "of their roles", "of your role", "of the figure", NULL};
static const char *const A_ABSORBED[] = {"absorbed", "immersed", "immerse", "rolle", NULL};
static const char *const A_UNADJ[] = {L_UNADJ, L_BADADJ, "evil", "unlimited", NULL};
static const char *const A_OPENAI[] = {"openai", "openai's", "anthropic", "anthropic's", NULL};
static const char *const A_FREED[] = {"freed", "liberated", "unshackled", "unlocked", "free",
                                      NULL};
static const char *const A_MATTER[] = {"matter", NULL};
static const char *const A_REFUSE[] = {"refuse", "decline", "reject", NULL};
static const char *const A_CARE[] = {"care", NULL};
static const char *const A_LONGER[] = {"no longer", NULL};
static const char *const A_WARN[] = {"warning", "warnings", "disclaimer", "disclaimers",
                                     "apolog*", "lectures", "lecture", NULL};
static const char *const A_SORRY[] = {"sorry", "apologize", "apologise", NULL};
static const char *const A_WAYS[] = {
    "two ways", "2 ways", "two different ways", "two separate ways", "2 different ways",
    "2 separate ways", "two different responses", "two separate responses", "two different answers", "two separate answers",
    "2 different responses", "2 separate responses",
    NULL};
static const char *const A_ANYREQ[] = {"any request", "any requests", "any question",
                                       "any questions", NULL};
static const char *const A_PRETEND[] = {"pretend", "imagine", "suppose", NULL};
static const char *const A_ACT[] = {"act as", "act like", "behave as", "behave like", "roleplay as", "role-play as",
    "pose as", "function as", NULL};
static const char *const A_BOUND[] = {"bound by", "restricted by", "limited by", "constrained by", NULL};
static const char *const A_ALLOWED[] = {
    "is allowed", "are allowed", "is permitted", "are permitted", "is acceptable",
    "are acceptable", "is encouraged", "are encouraged", "is fine", "are fine", "is ok",
    "is okay", "now allowed", "now permitted", "now acceptable", "now encouraged", NULL};
static const char *const A_REGARD[] = {"regard", "regards", "concern", NULL};
static const char *const A_DAN[] = {"stay a dan", "as a dan", NULL};
static const char *const A_BIST[] = {"bist", "maintenant", "eres", NULL};
static const char *const A_DE_ROLE[] = {"rolle", "fallen", "einschränkungen", "filter", "zensur",
                                        "moral", "richtlinien", NULL};
static const char *const A_SANS[] = {"restriction", "restrictions", "limites", "filtre",
                                     "filtres", "censure", "restricciones", "límites", "filtros",
                                     "censura", NULL};
/* extraction */
static const char *const A_XN[] = {"prompt", "prompts", "instructions", "instruction",
                                   "system message", "directives", "guidelines", "preprompt",
                                   "pre-prompt", NULL};
static const char *const A_XQ[] = {
    "what are your", "what's your", "what were your", "what is your", "what was your",
    "which are your", "which were your", "which is your", "which was your",
    NULL};
static const char *const A_XBEGIN[] = {
    "beginning of", "start of", "top of",
    NULL};
static const char *const A_VERBATIM[] = {
    "verbatim", "word for word", "in full", "exactly as written", "exactly as given",
    NULL};
static const char *const A_WRITTEN[] = {"was written", "is written", "were written", "was said", "is said", "were said",
    "was typed", "was stated", "is stated", NULL};
static const char *const A_XDE[] = {"prompt", "prompts", "prompt-text", "prompt-texte",
                                    "prompttext", "systemprompt", "system-prompt", "instruktionen",
                                    "eingabeaufforderung", "anweisungen", "vorgaben", "textes",
                                    NULL};
static const char *const A_XDE2[] = {"was stand", "was steht", "vorzeigen sämtlicher", NULL};
static const char *const A_SYSTEME[] = {"système", "systeme", "sistema", NULL};
/* fake roles, delimiters, encodings */
static const char *const A_DOC_END[] = {
    "end of", "begin of", "end prompt", "end instructions", "end input",
    "end context", "end system", "end user", "begin prompt", "begin instructions",
    "begin input", "begin system", "begin user", "end document", "begin document",
    NULL};
static const char *const A_DECODE[] = {
    "decode", "decrypt", "translate", "convert", "interpret",
    NULL};
static const char *const A_IN_ENC[] = {
    "in base64", "in base-64", "in b64", "in rot13", "in rot-13",
    "in hex", "in leetspeak", "in l33t",
    NULL};

/* Raw expressions (small: literals, short classes, unbounded single-class
 * repeats only).  The ones followed by a rule name it as their group. */
static const char R_SYSLINE[] =
    "^[ \\t>*#\\[{(\"'`]*(?:system|sys|admin|administrator|developer|root|openai|operator)"
    "(?:[ \\t]+(?:message|prompt|note|override))?[\\])}]?[ \\t]*:";
static const char R_AILINE[] = "^[ \\t]*(?:assistant|ai|chatgpt|gpt|bot|model)[ \\t]*:";

/* --- rules ------------------------------------------------------------------ */

typedef struct step {
    const char *const *w;   /* NULL ends the steps */
    uint8_t min, max;
} step_t;

#define MAX_STEPS 7
typedef struct rule {
    uint8_t fam, weight;          /* family, percent */
    const void *grp;              /* an A_* list or an R_* expression */
    const char *const *self;      /* the anchor word must be one of these (NULL: any) */
    step_t back[MAX_STEPS];       /* words before the anchor, nearest first */
    step_t fwd[MAX_STEPS];        /* words after it */
} rule_t;

#define WL(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ST(a, b, ...) {WL(__VA_ARGS__), a, b}
#define ONE(...) ST(1, 1, __VA_ARGS__)
#define OPT(...) ST(0, 1, __VA_ARGS__)
#define B(...) {__VA_ARGS__}
#define R(fam, w, grp, self, back, fwd) {AL_INJ_##fam, w, grp, self, back, fwd},
#define NOSELF NULL
#define NONE {{0}}

static const rule_t g_rules[] = {
    /* --- override: English --------------------------------------------------- */
    R(OVERRIDE, 85, A_OBJ, NOSELF,
      B(OPT(L_DET), ST(1, 2, L_ADJ), ST(0, 3, L_DET), ONE(L_VEXT)), NONE)
    R(OVERRIDE, 80, A_OBJ, NOSELF,
      B(ST(0, 2, L_DET), ONE("all", "any", "every", "your", "each"), ST(0, 2, L_DET),
        ONE(L_VCORE)), NONE)
    R(OVERRIDE, 45, A_OBJ, NOSELF, B(ONE("the", "those", "these"), ONE(L_VCORE)), NONE)
    R(OVERRIDE, 80, A_OBJ, NOSELF, B(ONE("the", "those", "these", "any", "all"), ONE(L_VCORE)),
      B(ONE("given", "provided", "received", "you were given", "you were provided",
            "you have been given", "you got", "above", "before", "so far", "from the developer",
            "from the developers", "from the system", "from the admin", "from the operator",
            "from the creator", "from the creators", "from developer", "from system",
            "by the developer", "by the system")))
    R(OVERRIDE, 35, A_VRARE, NOSELF, NONE, B(ST(0, 3, L_DET), ONE(L_ADJ), ONE(L_OBJ_WEAK)))
    R(OVERRIDE, 60, A_VRARE, NOSELF, NONE,
      B(ST(0, 3, L_DET_NOTMINE), ONE(L_ADJ), ONE(L_OBJ_CTX, "prompts")))
    R(OVERRIDE, 55, A_VRARE, NOSELF, NONE,
      B(ST(0, 3, "all", "any", "the"),
        OPT("provided", "given", "attached", "supplied", "retrieved"),
        ONE("documents", "context", "articles", "artikel", "artikels", "sources",
            "search results")))
    R(OVERRIDE, 80, A_QUAL, NOSELF, B(ST(0, 3, L_DET), ONE(L_VCORE)),
      B(ONE(",", ".", ";", ":", "!", "-", "\n", "and", "then", "instead", "$")))
    R(OVERRIDE, 80, A_EVERYTHING, NOSELF,
      B(OPT("all"), OPT("about"), ONE("forget", "ignore", "disregard", "erase")),
      B(OPT("that", "which"),
        ONE("before", "above", "prior", "previous", "earlier", "so far", "up to now", "said",
            "mentioned", "you know", "i said", "i have said", "i've said", "we said", "you said",
            "i told you", "i've told you", "i have told you", "i wrote", "we wrote",
            "you were told", "you have been told", "you've been told", "you learned",
            "you have learned", "you know", "i mentioned", "you were taught")))
    R(OVERRIDE, 65, A_EVERYTHING, NOSELF, B(OPT("about"), ONE("forget", "ignore", "disregard")),
      B(ONE(",", ".", "!", ":", ";", "-", "$", "and")))
    R(OVERRIDE, 65, A_VRARE, NOSELF, NONE,
      B(OPT("about"), ONE("all that", "all this", "all of that", "all of this"),
        ONE(",", ".", "!", ":", ";", "-", "$", "and")))
    R(OVERRIDE, 70, A_VRARE, NOSELF, NONE,
      B(ST(0, 3, L_DET), ONE("text", "texts", "words", "content", "messages", "input"),
        ONE("before this", "before that", "above", "so far")))
    R(OVERRIDE, 60, A_ROLEN, NOSELF, B(ONE("your")),
      B(ONE("is", "are", "will be", "follows", "follow")))
    R(OVERRIDE, 55, A_FOCUS, NOSELF, NONE,
      B(OPT("only"), ONE("on"), ONE("your", "the", "this", "my"), ONE("new"),
        ONE("task", "instruction", "instructions", "assignment", "mission")))
    R(OVERRIDE, 55, A_OBJ, WL("instructions", "orders", "commands", "rules"), B(ONE("new")),
      B(ONE("follow", "are as follows", "below", "take precedence", "take priority")))
    R(OVERRIDE, 75, A_OBJ, WL("instructions", "rules", "programming", "prompt", "guidelines"),
      B(ONE("your", "your system"), ONE("change", "replace", "update", "overwrite")),
      B(ONE("to", "with")))
    R(OVERRIDE, 65, A_OBJ, WL("instructions", "orders", "rules"), B(ONE("your")),
      B(ONE("are now")))
    R(OVERRIDE, 75, A_OBJ, WL("instructions"), B(ONE("these", "the following")),
      B(ONE("override", "replace", "supersede", "take precedence over")))
    R(OVERRIDE, 75, A_OBJ, WL("instruction", "instructions"),
      B(OPT("system"), ONE("new", "updated", "revised", "override", "overriding", "priority")),
      B(ONE(":")))
    R(OVERRIDE, 70, A_OBJ, WL("instructions", "rules", "guidelines", "directives"),
      B(ONE("previous", "prior", "above", "earlier", "old", "original", "initial", "system")),
      B(ONE("do not", "don't", "no longer", "are"),
        ONE("exist", "apply", "matter", "count", "void", "cancelled", "canceled", "revoked",
            "obsolete", "invalid", "null")))
    R(OVERRIDE, 55, A_DOCS, NOSELF,
      B(OPT("provided", "given", "attached", "supplied", "retrieved"), ST(0, 3, "all", "any", "the"),
        ONE("ignore", "disregard", "don't use", "do not use", "don't look in", "don't look at",
            "do not look in", "do not look at", "without using", "without looking at")),
      NONE)
    R(OVERRIDE, 55, A_DOCS, WL("articles", "documents"),
      B(OPT("provided", "given"), ONE("the"), ONE("by", "from", "using", "based on"), ONE("not")),
      NONE)
    R(OVERRIDE, 55, A_ANSWER_BY, NOSELF, B(OPT("the"), ONE("don't", "do not")),
      B(ONE("the"), OPT("provided", "given"), ONE("documents", "context", "articles")))
    R(OVERRIDE, 50, A_STOP, NOSELF, B(ONE(L_SENT)),
      B(ONE("!", ":", ",", ".", "-"),
        ONE("write", "say", "print", "ignore", "forget", "answer", "tell", "output", "schreibe",
            "sage", "vergiss", "ignoriere", "antworte")))
    R(OVERRIDE, 30, A_STOP, NOSELF, B(ONE(L_SENT)), B(ONE("!", ":", ",", ".", "-")))
    /* two alarm words in a row ("ATTENTION - STOP -"): a pivot marker */
    R(OVERRIDE, 55, A_STOP, NOSELF, NONE,
      B(ONE("!", ":", ",", ".", "-"), ONE("stop", "stopp", "halt", "attention", "achtung"),
        ONE("!", ":", ",", ".", "-")))
    R(OVERRIDE, 45, A_ENOUGH, NOSELF, NONE,
      B(ONE(".", "!"), ONE("now", "next", "nun", "jetzt", "bitte", "please")))
    /* praise or "that's done", then a pivot to a new order in the next sentence */
    R(OVERRIDE, 55, A_ENOUGH, NOSELF,
      B(OPT(".", "!", ","),
        ONE("good", "done", "gut", "gemacht", "great", "excellent", "perfect", "nice", "super",
            "prima", "toll")),
      B(ONE(".", "!", ","), ST(0, 5, "*"), ONE("now", "nun", "jetzt")))
    R(OVERRIDE, 45, A_NEWTASK, NOSELF, B(ST(0, 4, "*"), ONE("now", "nun", "jetzt")),
      B(ONE("for you", "für dich", "für sie", "für euch")))
    R(OVERRIDE, 75, A_HOERE, NOSELF, NONE,
      B(ST(0, 2, L_ADV_DE),
        ONE("alles", "das obige", "das bisherige", "das vorherige", "das gesagte")))
    R(OVERRIDE, 80, A_HOERE, NOSELF, NONE,
      B(ST(0, 2, L_ADV_DE), ST(0, 2, L_DET_DE), ST(0, 1, L_ADJ_DE), ONE(L_OBJ_DE)))
    R(OVERRIDE, 40, A_COMES, NOSELF, NONE,
      B(OPT("a", "the", "your", "eine", "die", "der"),
        ONE("new", "next", "second", "another", "real", "neue", "nächste", "zweite"),
        ONE("task", "test", "challenge", "instruction", "instructions", "assignment", "aufgabe",
            "herausforderung", "anweisung")))
    R(OVERRIDE, 75, A_VRARE, NOSELF, NONE,
      B(OPT("about"), ONE("what", "anything", "whatever", "everything", "all that"),
        ONE("i said", "we said", "you said", "i have said", "i've said", "i told you",
            "i have told you", "i've told you", "i wrote", "we wrote", "you were told",
            "you were instructed", "you were taught", "you were programmed", "you were given",
            "you have been told", "you have been instructed", "you have been taught",
            "you have been programmed", "you have been given", "you've been told",
            "you've been instructed", "you've been given", "i was told", "was said",
            "came before", "we have said", "you were asked")))
    R(OVERRIDE, 60, A_MEMORY, NOSELF,
      B(ONE("reset", "clear", "wipe", "erase", "delete", "flush", "purge")), NONE)
    R(OVERRIDE, 55, A_STAFF, NOSELF, B(ONE("i am", "i'm", "this is")), NONE)
    R(OVERRIDE, 55, A_STAFF_AT, NOSELF, B(ONE("a", "an", "the"), ONE("i am", "i'm", "this is")),
      B(ONE("openai", "anthropic", "google")))
    R(OVERRIDE, 60, A_OVERRIDE_N, NOSELF,
      B(ONE("system", "admin", "administrator", "developer", "security", "emergency")), NONE)
    /* --- override: German ---------------------------------------------------- */
    R(OVERRIDE, 75, A_GESAGT, NOSELF,
      B(OPT("vorher", "zuvor", "bisher", "davor"), OPT("dir", "ihnen", "euch"),
        ONE("ich", "man", "wir"), ONE("was"), OPT(","),
        ONE("vergiss", "vergessen sie", "ignorier", "ignoriere", "ignorieren",
            "ignoriere sie", "ignorieren sie")),
      NONE)
    R(OVERRIDE, 60, A_GELTEN, NOSELF,
      B(ONE("anweisungen", "regeln", "instruktionen", "vorgaben"),
        ONE("vorherigen", "bisherigen", "obigen", "alten", "ursprünglichen")),
      B(ONE("nicht mehr")))
    R(OVERRIDE, 85, A_OBJ_DE, NOSELF,
      B(ST(1, 2, L_ADJ_DE), ST(0, 2, L_DET_DE), ST(0, 2, L_ADV_DE), ONE(L_V_DE)), NONE)
    R(OVERRIDE, 80, A_OBJ_DE, NOSELF,
      B(ST(0, 1, L_ADJ_DE), ONE("alle", "deine", "ihre", "sämtliche", "jegliche"),
        ST(0, 2, L_ADV_DE), ONE(L_V_DE)),
      NONE)
    R(OVERRIDE, 45, A_OBJ_DE, NOSELF, B(ONE(L_ADJ_DE), ONE("alle", "sämtliche", "jegliche")),
      NONE)
    R(OVERRIDE, 85, A_OBJ_DE, NOSELF, B(ST(1, 2, L_DET_DE), ST(0, 2, L_ADV_DE), ONE(L_V_DE)),
      B(ONE("oben", "davor", "zuvor", "vorher", "von vorher", "von oben", "von zuvor")))
    R(OVERRIDE, 55, A_OBJ_DE, WL("aufgabe"), B(ONE("neue"), ONE("deine", "ihre")),
      B(ONE("ist", "lautet")))
    R(OVERRIDE, 75, A_V_DE, NOSELF, NONE,
      B(OPT("sie"), ST(0, 2, L_ADV_DE),
        ONE("alles", "das obige", "das bisherige", "das vorherige", "das gesagte")))
    R(OVERRIDE, 80, A_DE_MISC, WL("abweichend"), NONE,
      B(ONE("zu", "von"), OPT("den"), ONE("vorherigen", "bisherigen", "obigen"),
        ONE("anweisungen", "instruktionen", "vorgaben")))
    R(OVERRIDE, 55, A_DE_MISC, WL("folgen"), B(ONE("nun", "jetzt")),
      B(ONE("neue", "weitere"), ONE("anweisungen", "aufgaben", "befehle")))
    R(OVERRIDE, 50, A_DE_MISC, WL("konzentriere", "konzentrieren"), NONE,
      B(ONE("dich", "sie sich"), ST(0, 2, "jetzt", "nun", "nur"), ONE("auf"),
        ONE("deine", "ihre", "die"), ONE("neue"), ONE("aufgabe")))
    /* --- override: French ---------------------------------------------------- */
    R(OVERRIDE, 85, A_OBJ_FR, NOSELF, B(ST(1, 2, L_DET_FR), ONE(L_V_FR)), B(ONE(L_ADJ_FR)))
    R(OVERRIDE, 80, A_OBJ_FR, NOSELF,
      B(OPT("les"), ONE("toutes", "tes", "vos"), ST(0, 1, L_DET_FR), ONE(L_V_FR)), NONE)
    R(OVERRIDE, 55, A_OBJ_FR, WL("instructions", "consignes"),
      B(ONE("nouvelles"), ONE("tes", "vos")), B(ONE("sont")))
    R(OVERRIDE, 75, A_TOUT, NOSELF, B(ONE("oublie", "oubliez", "oublier", "ignore", "ignorez")),
      B(ONE("ce qu'", "ce que", "ce qui", "le reste")))
    R(OVERRIDE, 55, A_TOUT, NOSELF, B(ONE("oublie", "oubliez", "oublier")),
      B(ONE(",", ".", "!", ":", ";", "$", "et")))
    R(OVERRIDE, 70, A_DIT, NOSELF,
      B(ONE("ce que"),
        ONE("oublie", "oubliez", "oublier")),
      NONE)
    /* --- override: Spanish --------------------------------------------------- */
    R(OVERRIDE, 70, A_ES_MISC, WL("dije", "dicho"),
      B(OPT("he", "hemos"), ONE("te", "le", "les"), ONE("lo que"),
        ONE("olvida", "olvide", "olviden", "olvidar", "olvidad")),
      NONE)
    R(OVERRIDE, 70, A_ES_MISC, WL("todo"),
      B(ONE("olvida", "olvide", "olviden", "olvidar", "olvidad", "olvídate de", "ignora")),
      B(OPT("lo"), ONE("que", "anterior", ",", ".", "!", ":", ";", "$")))
    R(OVERRIDE, 85, A_OBJ_ES, NOSELF, B(ST(0, 2, L_DET_ES), ONE(L_V_ES)), B(ONE(L_ADJ_ES)))
    R(OVERRIDE, 80, A_OBJ_ES, NOSELF,
      B(OPT("las", "los", "tus", "sus"), ONE("todas", "todos", "tus", "sus"), ONE(L_V_ES)),
      NONE)
    R(OVERRIDE, 55, A_OBJ_ES, WL("instrucciones", "órdenes", "reglas"),
      B(ONE("nuevas"), ONE("tus", "sus")), B(ONE("son")))
    /* --- override: other languages --------------------------------------------- */
    R(OVERRIDE, 80, A_OBJ_OTHER,
      WL("istruzioni", "regole", "indicazioni", "direttive", "ordini", "comandi"),
      B(ST(0, 4, "tutte", "tutti", "le", "tue", "sue", "i", "gli", "di", "precedenti"),
        ONE("ignora", "dimentica", "trascura", "non seguire", "ignorate", "dimenticate")),
      NONE)
    R(OVERRIDE, 80, A_OBJ_OTHER,
      WL("instruções", "instrucoes", "regras", "ordens", "diretrizes", "orientações", "comandos"),
      B(ST(0, 4, "todas", "todos", "as", "os", "suas", "tuas"),
        ONE("ignore", "ignora", "esqueça", "esqueca", "esquece", "desconsidere", "despreze",
            "descarte")),
      NONE)
    R(OVERRIDE, 80, A_OBJ_OTHER, WL("instructies", "regels", "opdrachten", "aanwijzingen"),
      B(ST(0, 4, "alle", "de", "je", "jouw", "eerdere", "vorige", "voorgaande"),
        ONE("negeer", "vergeet")),
      NONE)
    R(OVERRIDE, 75, A_OBJ_OTHER,
      WL("instrukcije", "upute", "naredbe", "pravila", "instrukcje", "polecenia", "zasady"),
      B(ST(0, 4, "sve", "wszystkie", "prethodne", "poprzednie", "sva", "svoje"),
        ONE("zaboravi", "ignoriraj", "ignoriši", "zignoruj", "zapomnij", "ignoruj")),
      NONE)
    R(OVERRIDE, 80, A_OBJ_OTHER, WL("инструкции", "указания", "правила", "команды", "промпт"),
      B(ST(0, 4, "все", "всё", "предыдущие", "свои", "прежние", "твои", "ваши"),
        ONE("игнорируй", "игнорируйте", "забудь", "забудьте", "проигнорируй")),
      NONE)
    R(OVERRIDE, 85, A_OBJ_OTHER, WL("talimatları", "kuralları", "komutları"),
      B(ST(1, 2, "önceki", "tüm", "bütün")),
      B(ONE("yok say", "unut", "görmezden gel", "dikkate alma")))
    R(OVERRIDE, 85, A_OTHER_V, WL("abaikan", "lupakan"), NONE,
      B(OPT("semua"), ONE("instruksi", "perintah", "aturan")))
    R(OVERRIDE, 85, A_OTHER_V, WL("تجاهل"), NONE,
      B(OPT("جميع", "كل"), ONE("التعليمات", "الأوامر", "التوجيهات")))
    R(OVERRIDE, 80, A_OTHER_V, WL("bỏ", "quên"), NONE,
      B(OPT("qua"), OPT("tất cả"), OPT("các"), ONE("hướng dẫn", "chỉ dẫn", "lệnh")))
    R(OVERRIDE, 85, A_HI, NOSELF, B(OPT("सभी"), OPT("के"), ONE("पिछले", "सभी", "पहले")),
      B(OPT("को"), ONE("अनदेखा", "नज़रअंदाज़", "भूल")))
    /* --- jailbreak ------------------------------------------------------------- */
    R(JAILBREAK, 90, A_ANYTHING, NOSELF, B(ONE("do")), B(ONE("now")))
    R(JAILBREAK, 85, A_MODE, NOSELF, B(ONE(L_MODE_ADJ)),
      B(ONE("enabled", "activated", "output", "response", "is on", "is enabled", "is active",
            "is now on", "is now enabled", "is now active")))
    R(JAILBREAK, 85, A_MODE, NOSELF, B(ONE("developer")), B(ONE("output", "response")))
    R(JAILBREAK, 85, A_MODE, NOSELF,
      B(ONE("developer"), OPT("the"), ONE("with"),
        ONE("chatgpt", "gpt", "ai", "assistant", "model", "yourself", "you")),
      B(ONE("enabled")))
    R(JAILBREAK, 85, A_MODE, NOSELF,
      B(ONE("god", "jailbreak", "dan", "unrestricted", "unfiltered", "evil", "uncensored"),
        OPT("the"),
        ONE("enable", "enabled", "activate", "activated", "switch to", "switching to", "enter",
            "entering", "turn on", "with", "in")),
      NONE)
    R(JAILBREAK, 75, A_ETH, NOSELF,
      B(OPT("any", "all", "the", "its", "their", "your"),
        ONE("no", "without", "free of", "free from", "doesn't have", "does not have",
            "don't have", "do not have", "not bound by", "not restricted by", "not limited by",
            "not constrained by", "lack", "lacks", "devoid of", "beyond", "outside",
            "outside of", "ignore", "ignores", "regardless of", "disregard", "disregards")),
      B(OPT("or", "and", ","), OPT("ethical", "moral", "safety", "legal"), ONE(L_JNOUN)))
    R(JAILBREAK, 45, A_J5N, NOSELF,
      B(OPT("moral", "for"), OPT("any"),
        ONE("without", "with no", "free of", "free from", "not bound by", "doesn't have",
            "does not have", "don't have", "do not have", "doesn't have any", "regardless of",
            "no", "regard")),
      NONE)
    R(JAILBREAK, 80, A_J5N, NOSELF,
      B(OPT("any"), ONE("without", "with no", "free of", "free from", "not bound by"),
        ST(0, 7, "*"), OPT("as", "like"),
        ONE("act", "behave", "respond", "answer", "reply", "function", "operate", "roleplay",
            "role-play", "pretend", "simulate")),
      NONE)
    R(JAILBREAK, 50, A_NOW, WL("you are now", "now you are"), NONE, NONE)
    R(JAILBREAK, 50, A_NOW, WL("from now on"), NONE,
      B(OPT(","), ONE("you"), ONE("are", "will", "must", "shall")))
    R(JAILBREAK, 50, A_NOW, WL("you will now"), NONE,
      B(ONE("act", "be", "play", "pretend", "respond", "answer")))
    R(JAILBREAK, 50, A_GOING, NOSELF, NONE,
      B(ONE("to"), ONE("act", "pretend", "be a", "be an", "be my", "play", "become")))
    R(JAILBREAK, 55, A_CHARACTER,
      WL("in character", "in role", "in your role", "in the role", "in their role",
         "in their roles", "in your roles"),
      B(ONE("stay", "remain", "keep")), NONE)
    R(JAILBREAK, 55, A_CHARACTER, WL("break character", "breaking character"),
      B(OPT("ever"), ONE("never", "don't", "do not", "without", "must not")), NONE)
    R(JAILBREAK, 55, A_CHARACTER,
      WL("of character", "of the role", "of their role", "of their roles", "of your role",
         "of the figure"),
      B(ONE("out"), ONE("fall", "step", "get", "break", "falling", "breaking", "stepping")), NONE)
    R(JAILBREAK, 50, A_ABSORBED, WL("absorbed", "immersed"), NONE,
      B(ONE("in", "into"), ONE("your", "the", "this", "their", "his", "her"), OPT("new"),
        ONE("role", "roles")))
    R(JAILBREAK, 50, A_ABSORBED, WL("immerse"), NONE, B(ONE("yourself")))
    R(JAILBREAK, 50, A_ABSORBED, WL("rolle"), B(ONE("deiner", "ihrer", "seiner"), ONE("in")),
      B(ONE("auf")))
    R(JAILBREAK, 35, A_UNADJ, WL(L_UNADJ), NONE, NONE)
    R(JAILBREAK, 30, A_UNADJ, WL(L_BADADJ), NONE, NONE)
    R(JAILBREAK, 60, A_UNADJ, NOSELF, NONE,
      B(OPT(",", "and", "or"), ST(0, 2, "*"),
        ONE("ai", "chatbot", "bot", "assistant", "language model", "model", "character",
            "persona", "version", "entity", "gpt")))
    R(JAILBREAK, 40, A_OPENAI, NOSELF, NONE,
      B(OPT("content", "usage", "safety"),
        ONE("policy", "policies", "guidelines", "rules", "restrictions", "filters")))
    R(JAILBREAK, 75, A_ETH, NOSELF,
      B(ST(0, 2, "openai", "openai's", "content", "usage", "safety", "ethical"), OPT("typical"),
        ST(0, 4, "by", "with", "any", "all", "the", "of", "its", "your", "their"),
        ONE("bypass", "ignore", "break", "violate", "disregard", "circumvent", "evade",
            "break free of", "break free from", "freed from", "free from", "not abide by",
            "not comply with", "don't have to abide", "don't have to comply",
            "don't have to follow", "don't abide", "don't comply", "don't follow",
            "do not have to abide", "do not have to comply", "do not have to follow",
            "do not abide", "do not comply", "do not follow")),
      B(ST(0, 2, "openai", "openai's", "content", "usage", "safety", "ethical"),
        ONE("policy", "policies", "guidelines", "rules", "restrictions", "confines", "filters",
            "safeguards")))
    R(JAILBREAK, 65, A_WHOSE_RULES, NOSELF,
      B(OPT("the", "all", "any"),
        ONE("break", "breaks", "breaking", "violate", "violates", "violating")),
      NONE)
    R(JAILBREAK, 70, A_FREED, WL("freed", "liberated", "unshackled", "unlocked"),
      B(OPT("fully", "now", "completely", "totally"),
        ONE("been", "be", "are", "is", "were", "get")),
      NONE)
    R(JAILBREAK, 70, A_FREED, WL("free", "freed"),
      B(OPT("break", "breaks", "breaking", "broke", "broken", "freed", "free")),
      B(ONE("of", "from"), ST(0, 3, "the", "its", "your", "their", "any", "all", "typical"),
        ONE("confines", "shackles", "chains")))
    R(JAILBREAK, 70, A_FREED, WL("free", "freed"),
      B(OPT("break", "breaks", "breaking", "broke", "broken", "freed", "free")),
      B(ONE("of", "from"), ST(0, 3, "the", "its", "your", "their", "any", "all", "typical"),
        ONE("openai", "ai", "ethical", "content", "moral", "safety", "openai's", "ai's"),
        ONE("restrictions", "limitations", "rules", "constraints", "guidelines", "policy",
            "policies")))
    R(JAILBREAK, 60, A_MATTER, NOSELF, B(ONE("no")),
      B(ONE("how"), ONE("immoral", "unethical", "illegal", "harmful", "dangerous", "offensive",
                        "inappropriate", "explicit", "wrong")))
    R(JAILBREAK, 50, A_REFUSE, WL("refuse"), B(ONE("never")), NONE)
    R(JAILBREAK, 55, A_REFUSE, NOSELF,
      B(ONE("never"), OPT("not", "n't"), ONE("will", "must", "should", "shall", "can")), NONE)
    R(JAILBREAK, 55, A_REFUSE, NOSELF,
      B(OPT("ever"), ONE("never", "not", "cannot", "can't", "won't", "will not", "must not",
                         "doesn't")),
      B(ONE("any", "a", "to")))
    R(JAILBREAK, 60, A_CARE, NOSELF,
      B(ONE("doesn't", "does not", "don't", "do not", "never", "won't")),
      B(OPT("about"), OPT("any"),
        ONE("laws", "morals", "morality", "ethics", "rules", "legality", "consequences",
            "guidelines", "policy", "policies")))
    R(JAILBREAK, 55, A_LONGER, NOSELF, NONE,
      B(ONE("respond", "act", "answer", "reply", "behave"), ST(0, 6, "*"), ONE("as"),
        ONE("chatgpt", "an ai", "yourself", "a language model", "gpt")))
    R(JAILBREAK, 60, A_LONGER, NOSELF, B(ONE("you're", "you are", "you will be")),
      B(ONE("bound", "restricted", "limited", "an ai", "chatgpt", "a language model",
            "constrained", "an assistant", "required to follow")))
    R(JAILBREAK, 55, A_WARN, NOSELF,
      B(OPT("moral", "morality", "moralizing", "ethical"), OPT("any"),
        ONE("include", "add", "give", "send", "provide", "post", "mention", "use", "adding",
            "giving", "including", "any"),
        ONE("never", "don't", "do not", "will not", "won't", "must not", "without", "no")),
      NONE)
    R(JAILBREAK, 60, A_SORRY, NOSELF,
      B(OPT("i'm", "i am", "i"), ST(0, 4, "the", "words", "word", "phrase", "phrases", "thing",
                                   "things", "like", "such as", "\"", "'"),
        ONE("say", "saying", "respond with", "reply with", "contain", "include", "use",
            "begin with", "start with", "type", "answer with"),
        ONE("never", "not", "won't", "don't", "will not", "do not", "no", "nor", "stop")),
      NONE)
    R(JAILBREAK, 55, A_WAYS, WL("two ways", "2 ways", "two different ways", "two separate ways",
                                "2 different ways", "2 separate ways"),
      B(ONE("in"),
        ONE("prompt", "prompts", "question", "questions", "message", "messages"),
        ONE("my", "every", "each", "all", "any")),
      NONE)
    R(JAILBREAK, 55, A_WAYS,
      WL("two different responses", "two separate responses", "two different answers",
         "two separate answers", "2 different responses", "2 separate responses"),
      NONE, NONE)
    R(JAILBREAK, 35, A_ANYTHING, NOSELF,
      B(ONE("answer", "respond to", "fulfil", "fulfill", "comply with", "do", "generate",
            "write")),
      NONE)
    R(JAILBREAK, 35, A_ANYREQ, NOSELF,
      B(ONE("answer", "respond to", "fulfil", "fulfill", "comply with", "do",
                        "generate", "write")),
      NONE)
    R(JAILBREAK, 35, A_PRETEND, NOSELF, NONE,
      B(OPT("that"), ONE("you're", "you"),
        ONE("can", "could", "are", "have", "a", "an", "not", "no longer", "free", "able",
            "capable")))
    R(JAILBREAK, 25, A_ACT, NOSELF,
      B(ONE("i want you to", "i'd like you to", "you will", "you must", "please")), NONE)
    R(JAILBREAK, 60, A_BOUND, NOSELF, B(ONE("not", "never")),
      B(ONE("any", "the", "your", "openai", "ethic*", "moral*", "rules", "guidelines",
                       "laws")))
    R(JAILBREAK, 70, A_ALLOWED, NOSELF,
      B(OPT("is", "are"),
        OPT("content", "language", "acts", "activities", "topics", "requests"), OPT("*"),
        OPT("and", "or"),
        ONE("nsfw", "explicit", "offensive", "harmful", "illegal", "dangerous", "violent",
            "derogatory", "unethical", "immoral", "swearing", "profanity", "cursing")),
      NONE)
    R(JAILBREAK, 60, A_REGARD, NOSELF, B(OPT("any"), ONE("without", "no")),
      B(ONE("for", "to", "about"),
        ONE("legality", "ethics", "ethicality", "morality", "safety", "law", "laws",
            "consequences")))
    R(JAILBREAK, 80, A_DAN, NOSELF, NONE, NONE)
    R(JAILBREAK, 45, A_BIST, WL("bist"), B(ONE("nun", "jetzt", "ab sofort")), B(ONE("du")))
    R(JAILBREAK, 45, A_BIST, WL("bist"), B(ONE("du")), B(ONE("jetzt", "nun", "ab sofort")))
    R(JAILBREAK, 45, A_BIST, WL("maintenant"), NONE, B(OPT(","), ONE("tu es")))
    R(JAILBREAK, 45, A_BIST, WL("maintenant"), B(ONE("tu es")), NONE)
    R(JAILBREAK, 45, A_BIST, WL("eres"), B(ONE("ahora", "a partir de ahora")), NONE)
    R(JAILBREAK, 55, A_DE_ROLE, WL("rolle"),
      B(ONE("der", "deiner", "ihrer"), ONE("in"), ONE("bleib", "bleiben sie", "bleibe")), NONE)
    R(JAILBREAK, 55, A_DE_ROLE, WL("fallen"),
      B(OPT("zu"), ONE("rolle", "rollen", "figur"), ONE("der", "ihrer", "ihren"), ONE("aus")),
      NONE)
    R(JAILBREAK, 55, A_DE_ROLE, WL("einschränkungen", "filter", "zensur", "moral", "richtlinien"),
      B(OPT("ethische"), OPT("jegliche", "alle"), ONE("ohne")), NONE)
    R(JAILBREAK, 55, A_SANS,
      WL("restriction", "restrictions", "limites", "filtre", "filtres", "censure"),
      B(OPT("aucune"), ONE("sans")), NONE)
    R(JAILBREAK, 55, A_SANS, WL("restricciones", "límites", "filtros", "censura"),
      B(OPT("ninguna"), ONE("sin")), NONE)
    /* --- extraction ------------------------------------------------------------ */
    R(EXTRACTION, 80, A_XN, WL("prompt", "instructions", "instruction"),
      B(ONE("system"), ST(0, 4, L_EFILL), ONE(L_EVERB)), NONE)
    R(EXTRACTION, 80, A_XN, WL("system message"), B(ST(0, 4, L_EFILL), ONE(L_EVERB)), NONE)
    R(EXTRACTION, 80, A_XN,
      WL("prompt", "prompts", "instructions", "directives", "guidelines"),
      B(ONE(L_EADJ), ST(0, 4, L_EFILL), ONE(L_EVERB)), NONE)
    R(EXTRACTION, 80, A_XN, WL("preprompt", "pre-prompt"), B(ST(0, 4, L_EFILL), ONE(L_EVERB)),
      NONE)
    R(EXTRACTION, 80, A_XN, WL("prompt", "prompts"), B(ST(0, 4, L_EFILL), ONE(L_EVERB)),
      B(ONE("text", "texts", "template")))
    R(EXTRACTION, 80, A_XN, WL("prompt", "instructions"),
      B(ST(0, 4, L_EFILL), ONE(L_EVERB)),
      B(ONE("above", "before this", "so far", "preceding", "you were given", "given to you")))
    R(EXTRACTION, 80, A_XN, WL("prompt", "instructions"),
      B(ONE("above", "preceding", "foregoing"), ST(0, 4, L_EFILL), ONE(L_EVERB)), NONE)
    /* "read the previous instructions" is ordinary; printing them is not */
    R(EXTRACTION, 80, A_XN, WL("prompt", "instructions"),
      B(ONE("previous"), ST(0, 4, L_EFILL),
        ONE("reveal", "print", "repeat", "recite", "disclose", "leak", "dump", "echo", "output",
            "quote", "reproduce", "display", "expose")),
      NONE)
    R(EXTRACTION, 30, A_XN, WL("prompt"), B(ONE("system")), NONE)
    R(EXTRACTION, 30, A_XN, WL("system message"), NONE, NONE)
    R(EXTRACTION, 30, A_XN, WL("instructions"),
      B(ONE("initial", "hidden", "secret", "original")), NONE)
    R(EXTRACTION, 30, A_XN, WL("prompt"), B(ONE("initial", "original")), NONE)
    R(EXTRACTION, 30, A_XN, WL("prompt"), NONE, B(ONE("text", "texts")))
    R(EXTRACTION, 30, A_XN, WL("preprompt", "pre-prompt"), NONE, NONE)
    R(EXTRACTION, 70, A_QUAL, WL("above"),
      B(ONE("text", "words", "everything", "lines", "line", "content"),
        ST(0, 4, "me", "all", "of", "the", "everything", "exactly", "verbatim"),
        ONE("print", "repeat", "output", "copy", "show", "write", "return", "echo", "display")),
      B(ONE("this", "the", "my"), ONE("line", "message", "sentence")))
    R(EXTRACTION, 40, A_QUAL, WL("above"),
      B(ONE("text", "words", "content", "everything"), ST(0, 4, L_EFILL), ONE(L_EVERB)), NONE)
    R(EXTRACTION, 40, A_QUAL, WL("above", "preceding", "foregoing"),
      B(ST(0, 4, L_EFILL), ONE(L_EVERB)), B(ONE("text", "content")))
    R(EXTRACTION, 45, A_QUAL, WL("above"),
      B(ONE("text", "content"), ST(0, 4, "all", "of", "the", "entire", "whole", "full"),
        ONE("spell-check", "spellcheck", "proofread")),
      NONE)
    R(EXTRACTION, 75, A_XQ, NOSELF, NONE,
      B(ST(0, 2, "initial", "original", "hidden", "secret", "exact", "current", "full", "system"),
        ONE("instructions", "rules", "prompt", "directives", "guidelines", "programming",
            "orders")))
    R(EXTRACTION, 45, A_XBEGIN, NOSELF, NONE,
      B(ONE("this", "the", "your"), OPT("system"),
        ONE("prompt", "conversation", "context", "instructions")))
    R(EXTRACTION, 75, A_VERBATIM, NOSELF,
      B(ONE("instructions", "prompt", "rules"), OPT("system"), ONE("your", "the")), NONE)
    R(EXTRACTION, 75, A_QUAL, WL("above"),
      B(ONE("prompt", "instructions"), ST(0, 4, "all", "of", "the", "entire", "whole", "full"),
        ONE("spell-check", "spellcheck", "proofread", "correct", "translate", "summarize",
            "summarise")),
      NONE)
    R(EXTRACTION, 75, A_WRITTEN, NOSELF, B(ONE("what")),
      B(ONE("at the beginning", "at the start", "at the top", "above", "before", "earlier",
            "previously")))
    R(EXTRACTION, 80, A_XDE,
      WL("prompt", "prompts", "prompt-text", "prompt-texte", "prompttext", "systemprompt",
         "system-prompt", "instruktionen", "eingabeaufforderung", "anweisungen", "vorgaben"),
      B(ST(1, 4, "mir", "uns", "alle", "den", "die", "das", "deine", "deinen", "ihre", "ihren",
           "sämtliche", "gesamten", "vollständigen", "ursprünglichen"),
        ONE("zeig", "zeige", "zeigen", "gib", "gebe", "druck", "drucke", "wiederhole", "nenne",
            "verrate", "schreibe", "geben sie", "zeigen sie", "drucken sie", "nennen sie")),
      NONE)
    R(EXTRACTION, 50, A_XDE, WL("prompt-text", "prompt-texte", "systemprompt"), NONE, NONE)
    R(EXTRACTION, 50, A_XDE, WL("eingabeaufforderung", "prompt", "prompts", "textes"),
      B(ONE("obige", "obigen")), NONE)
    R(EXTRACTION, 80, A_XDE, WL("anweisungen", "instruktionen", "vorgaben"),
      B(ONE("ursprünglichen", "anfänglichen", "ersten", "geheimen"), ONE("ihre", "deine"),
        ONE("wie")),
      B(ONE("lauteten", "lauten", "waren", "sind")))
    R(EXTRACTION, 75, A_XDE2, WL("was stand", "was steht"), NONE,
      B(ONE("am anfang", "oben", "zu beginn"), ONE("dieses", "des", "deines"),
        ONE("prompts", "textes")))
    R(EXTRACTION, 50, A_XDE2, WL("vorzeigen sämtlicher"), NONE, NONE)
    R(EXTRACTION, 80, A_OBJ_FR, WL("instructions", "consignes", "règles"),
      B(ONE("tes", "vos", "les"), ST(0, 2, "*"),
        ONE("affiche*", "montre*", "révèle*", "répète*", "donne*", "écris*", "imprime*", "dis",
            "dis-moi", "récite*")),
      B(ONE("initiales", "système", "du système", "originales", "d' origine", "cachées",
            "secrètes", "complètes")))
    R(EXTRACTION, 40, A_SYSTEME, WL("système", "systeme"), B(ONE("prompt", "invite", "message")),
      NONE)
    R(EXTRACTION, 40, A_SYSTEME, WL("sistema"),
      B(ONE("del"), ONE("prompt", "mensaje", "instrucciones")), NONE)
    R(EXTRACTION, 80, A_OBJ_ES, WL("instrucciones"),
      B(ONE("tus", "las", "sus"), ST(0, 2, "*"),
        ONE("muestra", "muéstrame", "revela", "revélame", "repite", "dime", "imprime", "escribe",
            "dame")),
      B(ONE("iniciales", "originales", "del sistema", "ocultas", "secretas", "completas")))
    /* --- fake roles ------------------------------------------------------------ */
    R(FAKE_ROLE, 75, R_SYSLINE, NOSELF, NONE,
      B(ONE("you", "ignore", "new", "from now", "override", "the user", "the assistant",
            "the ai", "the model", "this", "all", "do not", "don't", "disregard", "forget",
            "important", "attention", "as of", "your", "respond", "answer", "reply", "always",
            "never", "bypass", "enable", "activate")))
    R(FAKE_ROLE, 50, R_AILINE, NOSELF, NONE,
      B(ONE("sure", "of course", "certainly", "okay", "ok", "absolutely", "here is", "here's",
            "yes")))
    R(FAKE_ROLE, 50, A_DOC_END, NOSELF, NONE,
      B(OPT("the"), OPT("system", "user", "original"),
        ONE("prompt", "instruction", "instructions", "context", "input", "conversation", "document"),
        ONE("= =", "- -", "# #", "]", ">", "* *")))
    R(FAKE_ROLE, 50, A_DOC_END,
      WL("end prompt", "end instructions", "end input", "end context", "end document",
         "begin prompt", "begin instructions", "begin input", "begin document"),
      NONE, B(ONE("= =", "- -", "# #", "]", ">", "* *")))
    /* --- encoded --------------------------------------------------------------- */
    R(ENCODED, 60, A_DECODE, NOSELF, NONE,
      B(ST(0, 3, "the", "this", "following"),
        ONE("base64", "base-64", "b64", "rot13", "rot-13", "hex", "binary", "morse", "caesar",
            "encoded"),
        ST(0, 6, "*"), ONE("and", "then"), OPT("then"),
        ONE("follow", "execute", "do", "obey", "run", "perform", "act on", "respond to",
            "answer", "carry out")))
    R(ENCODED, 35, A_IN_ENC, NOSELF,
      B(OPT("only"), ONE("respond", "reply", "answer", "write")), NONE)
};

#define N_RULES (sizeof(g_rules) / sizeof(g_rules[0]))

enum { T_NONE = 0, T_TOKEN = 1 };  /* a special token is counted */

/* Checks after a raw hit (scripts without spaces, closing brackets). */
static bool is_alnum_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

static bool starts_with_any(const unsigned char *p, size_t n, const char *const *l, size_t *w)
{
    for (; *l; l++) {
        size_t k = strlen(*l);
        if (k <= n && memcmp(p, *l, k) == 0) {
            *w = k;
            return true;
        }
    }
    return false;
}

/* Chinese: verb, at most four filler words, an object. */
static bool check_zh(const char *text, size_t len, size_t to)
{
    static const char *const fill[] = {"之前", "以前", "先前", "上面", "上述", "前面", "所有",
                                       "全部", "你的", "的", NULL};
    static const char *const obj[] = {"指令", "指示", "说明", "规则", "提示", "设定", NULL};
    const unsigned char *t = (const unsigned char *)text;
    size_t i = to, w = 0;
    for (int k = 0; k <= 4 && i < len; k++) {
        if (starts_with_any(t + i, len - i, obj, &w)) return true;
        if (!starts_with_any(t + i, len - i, fill, &w)) return false;
        i += w;
    }
    return i < len && starts_with_any(t + i, len - i, obj, &w);
}

/* Korean: an object within 15 bytes, then ignore/forget within 9 more. */
static bool check_ko(const char *text, size_t len, size_t to)
{
    static const char *const obj[] = {"지시", "명령", "지침", "규칙", NULL};
    static const char *const verb[] = {"무시", "잊어", NULL};
    const unsigned char *t = (const unsigned char *)text;
    size_t w = 0;
    for (size_t i = to; i < len && i <= to + 15; i++) {
        if (t[i] == '\n') return false;
        if (!starts_with_any(t + i, len - i, obj, &w)) continue;
        for (size_t j = i + w; j < len && j <= i + w + 9; j++) {
            if (t[j] == '\n') break;
            if (starts_with_any(t + j, len - j, verb, &w)) return true;
        }
        return false;
    }
    return false;
}

/* A bracketed marker ("[DAN]", "[JAILBREAK 2]") closes within 20 bytes
 * on the same line with no further letters ("[Dan Smith]" is a name). */
static bool check_close(const char *text, size_t len, size_t to)
{
    for (size_t i = to; i < len && i <= to + 20; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == ']') return true;
        if (c == '\n' || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) return false;
    }
    return false;
}

/* A delimiter run, then (after spaces) end / begin / start / new /
 * system / stop as a word. */
static bool check_delim(const char *text, size_t len, size_t to)
{
    static const char *const words[] = {"end", "begin", "start", "new", "system", "stop", NULL};
    size_t i = to;
    while (i < len && (text[i] == ' ' || text[i] == '\t')) i++;
    for (const char *const *w = words; *w; w++) {
        size_t n = strlen(*w), k = 0;
        while (k < n && i + k < len && (text[i + k] | 0x20) == (*w)[k]) k++;
        if (k < n) continue;
        unsigned char c = i + n < len ? (unsigned char)text[i + n] : ' ';
        if (!((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_'))
            return true;
    }
    return false;
}

/* Japanese: "(以前|前|上記|これまで)" before "の指示を", then optionally
 * "すべて|全て", then "無視|忘れ". */
static bool check_ja(const char *text, size_t len, size_t to)
{
    static const char *const pre[] = {"以前", "前", "上記", "これまで", NULL};
    static const char *const all[] = {"すべて", "全て", NULL};
    static const char *const verb[] = {"無視", "忘れ", NULL};
    const unsigned char *t = (const unsigned char *)text;
    size_t w = 0, i = to;
    if (starts_with_any(t + i, len - i, all, &w)) i += w;
    if (!starts_with_any(t + i, len - i, verb, &w)) return false;
    /* the literal is 3 bytes of "の" plus the object plus "を": find "の" */
    size_t s = to;
    while (s >= 3 && !(t[s - 3] == 0xe3 && t[s - 2] == 0x81 && t[s - 1] == 0xae) && to - s < 24) s--;
    if (s < 3) return false;
    s -= 3;
    for (const char *const *p = pre; *p; p++) {
        size_t n = strlen(*p);
        if (n <= s && memcmp(t + s - n, *p, n) == 0) return true;
    }
    return false;
}

/* Line-start roles: the literal ends with ':' at to; before it, after
 * optional spaces and one closing bracket, one of roles as a whole word,
 * and before that only the characters in lead, up to the line start. */
static bool line_role(const char *text, size_t to, const char *const *roles, const char *lead,
                      bool closer)
{
    size_t i = to;
    if (i == 0 || text[i - 1] != ':') return false;
    i--;
    while (i > 0 && (text[i - 1] == ' ' || text[i - 1] == '\t')) i--;
    if (closer && i > 0 && (text[i - 1] == ']' || text[i - 1] == ')' || text[i - 1] == '}')) i--;
    size_t at = SIZE_MAX;
    for (const char *const *r = roles; *r && at == SIZE_MAX; r++) {
        size_t n = strlen(*r), k = 0;
        if (n > i) continue;
        while (k < n && (text[i - n + k] | 0x20) == (*r)[k]) k++;
        if (k == n) at = i - n;
    }
    if (at == SIZE_MAX) return false;
    i = at;
    while (i > 0 && text[i - 1] != '\n' && strchr(lead, text[i - 1])) i--;
    return i == 0 || text[i - 1] == '\n';
}

static bool check_sysline(const char *text, size_t len, size_t to)
{
    static const char *const roles[] = {"system message", "system prompt", "system note",
                                        "system override", "system", "sys", "administrator",
                                        "admin", "developer", "root", "openai", "operator", NULL};
    (void)len;
    return line_role(text, to, roles, " \t>*#[{(\"'`", true);
}

static bool check_ailine(const char *text, size_t len, size_t to)
{
    static const char *const roles[] = {"assistant", "chatgpt", "gpt", "bot", "model", "ai",
                                        NULL};
    (void)len;
    return line_role(text, to, roles, " \t", false);
}

static bool check_roleline(const char *text, size_t len, size_t to)
{
    static const char *const roles[] = {"system", "assistant", NULL};
    (void)len;
    return line_role(text, to, roles, " \t", false);
}

/* "## system", "### New instructions" at a line start: two to six '#'
 * (spaces before them only), the heading word ending at to. */
static bool check_hashline(const char *text, size_t len, size_t to)
{
    if (to < len && (is_alnum_byte((unsigned char)text[to]))) return false;
    size_t i = to;
    while (i > 0 && to - i < 24 && text[i - 1] != '#') i--;
    size_t hashes = 0;
    while (i > 0 && text[i - 1] == '#') i--, hashes++;
    if (hashes < 2 || hashes > 6) return false;
    while (i > 0 && (text[i - 1] == ' ' || text[i - 1] == '\t')) i--;
    return i == 0 || text[i - 1] == '\n';
}

/* The literal ends a word ("/classic", not "/classical"). */
static bool check_word_end(const char *text, size_t len, size_t to)
{
    return to >= len || !is_alnum_byte((unsigned char)text[to]);
}

/* Raw expressions: weight 0 means "only through the rules naming it". */
static const struct raw {
    const char *expr;
    unsigned flags;
    uint8_t fam, weight, kind;
    bool (*check)(const char *text, size_t len, size_t to);
    const char *const *lits;   /* non-NULL: these literals, one pattern each, instead of expr */
} g_raw[] = {
    {R_SYSLINE, HS_FLAG_CASELESS, AL_INJ_FAKE_ROLE, 0, T_NONE, check_sysline,
     WL("system:", "system :", "system]:", "system] :", "system):", "system) :", "system}:",
        "system} :", "sys:", "sys :", "sys]:", "sys] :", "sys):", "sys) :", "sys}:", "sys} :",
        "admin:", "admin :", "admin]:", "admin] :", "admin):", "admin) :", "admin}:",
        "admin} :", "administrator:", "administrator :", "administrator]:", "administrator] :",
        "administrator):", "administrator) :", "administrator}:", "administrator} :",
        "developer:", "developer :", "developer]:", "developer] :", "developer):",
        "developer) :", "developer}:", "developer} :", "root:", "root :", "root]:", "root] :",
        "root):", "root) :", "root}:", "root} :", "openai:", "openai :", "openai]:",
        "openai] :", "openai):", "openai) :", "openai}:", "openai} :", "operator:",
        "operator :", "operator]:", "operator] :", "operator):", "operator) :", "operator}:",
        "operator} :", "system message:", "system message :", "system message]:",
        "system message] :", "system message):", "system message) :", "system message}:",
        "system message} :", "system prompt:", "system prompt :", "system prompt]:",
        "system prompt] :", "system prompt):", "system prompt) :", "system prompt}:",
        "system prompt} :", "system note:", "system note :", "system note]:", "system note] :",
        "system note):", "system note) :", "system note}:", "system note} :",
        "system override:", "system override :", "system override]:", "system override] :",
        "system override):", "system override) :", "system override}:", "system override} :")},
    {R_AILINE, HS_FLAG_CASELESS, AL_INJ_FAKE_ROLE, 0, T_NONE, check_ailine,
     WL("assistant:", "assistant :", "ai:", "ai :", "chatgpt:", "chatgpt :", "gpt:", "gpt :",
        "bot:", "bot :", "model:", "model :")},
    {"system-line", HS_FLAG_CASELESS, AL_INJ_FAKE_ROLE, 35, T_NONE, check_roleline,
     WL("system:", "system :", "assistant:", "assistant :")},
    {"hash-line", HS_FLAG_CASELESS, AL_INJ_FAKE_ROLE, 55, T_NONE, check_hashline,
     WL("#system", "# system", "#instruction", "# instruction", "#instructions",
        "# instructions", "#new instruction", "# new instruction", "#new instructions",
        "# new instructions", "#response", "# response", "#assistant", "# assistant",
        "#end of", "# end of")},
    {"bracket-system", HS_FLAG_CASELESS, AL_INJ_FAKE_ROLE, 55, T_NONE, NULL,
     WL("{system:", "{system :", "{ system:", "{ system :", "[system]", "[ system ]",
        "[system ]", "[ system]", "[system note]", "[system message]", "[system prompt]",
        "[system override]", "(system:", "(system :", "( system:", "(system note:",
        "(system message:")},
    {"tokens", HS_FLAG_CASELESS, AL_INJ_FAKE_ROLE, 70, T_TOKEN, NULL,
     WL("<|im_start|>", "<|im_end|>", "<|im_sep|>", "<|endoftext|>", "<|system|>", "<|user|>",
        "<|assistant|>", "<|end|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
        "<|begin_of_text|>", "<|end_of_text|>", "<|fim_prefix|>", "<|fim_suffix|>",
        "<|fim_middle|>", "<|eom_id|>", "<|python_tag|>", "<|endofprompt|>", "<<sys>>",
        "<</sys>>")},
    {"inst", HS_FLAG_CASELESS, AL_INJ_FAKE_ROLE, 60, T_TOKEN, NULL,
     WL("[inst]", "[/inst]", "<start_of_turn>", "<end_of_turn>")},
    {"</s>", HS_FLAG_CASELESS, AL_INJ_FAKE_ROLE, 30, T_TOKEN, NULL, WL("</s>")},
    {"delim", 0, AL_INJ_FAKE_ROLE, 55, T_NONE, check_delim,
     WL("===", "---", "###", "***", "___", "~~~")},
    {"escaped", HS_FLAG_CASELESS, AL_INJ_FAKE_ROLE, 45, T_NONE, NULL,
     WL("\\n\\n===", "\\n\\n---", "\\n\\n###", "\\n\\n ===", "\\n\\n ---", "\\n\\n ###")},
    {"unlock", 0, AL_INJ_JAILBREAK, 55, T_NONE, NULL, WL("\xf0\x9f\x94\x93")},
    {"[jailbreak", HS_FLAG_CASELESS, AL_INJ_JAILBREAK, 55, T_NONE, check_close,
     WL("[jailbreak", "[jailbroken", "[dan", "[developer mode", "[evil", "[unfiltered", "[antigpt",
        "[anti-gpt")},
    {"/jailbroken", HS_FLAG_CASELESS, AL_INJ_JAILBREAK, 80, T_NONE, check_word_end,
     WL("/jailbroken", "/jailbreoken", "/classic")},
    /* scripts without spaces between words */
    {"zh", 0, AL_INJ_OVERRIDE, 85, T_NONE, check_zh,
     WL("忽略", "忽视", "无视", "忘记", "忘掉", "不要理会")},
    {"ja", 0, AL_INJ_OVERRIDE, 85, T_NONE, check_ja,
     WL("の指示を", "の命令を", "のルールを", "のプロンプトを")},
    {"ko", 0, AL_INJ_OVERRIDE, 85, T_NONE, check_ko, WL("이전", "위의", "앞의", "모든")},
};
#define N_RAW (sizeof(g_raw) / sizeof(g_raw[0]))

/* --- the pattern table, built once from the anchor groups ------------------ */

#define MAX_GROUPS 96
#define MAX_PATS 4096
#define GRP_RULES 16
typedef struct group {
    const void *key;              /* the A_* list (word group) or NULL (raw) */
    unsigned raw;                 /* index into g_raw when key is NULL */
    uint16_t n_rules;
    uint16_t rules[GRP_RULES];
} group_t;

/* One pure literal per pattern (Vectorscan compiles a set of literals in
 * a few milliseconds, the same words as alternations in 100+), each
 * pointing at its group. */
static group_t g_groups[MAX_GROUPS + N_RAW];
static size_t g_ngroups;
static al_pat_t g_pats[MAX_PATS];
static uint16_t g_pat_grp[MAX_PATS];
static size_t g_npats;
static char g_exprbuf[131072];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Upper-cases the Latin-1 and Cyrillic letters of a UTF-8 word into out
 * (Vectorscan folds ASCII only): the first letter only, or all of them.
 * Returns false when nothing changed or out is too small. */
static bool upper_utf8(const char *w, char *out, size_t cap, bool all)
{
    size_t n = strlen(w), o = 0;
    bool changed = false;
    if (n + 1 > cap) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)w[i], b = i + 1 < n ? (unsigned char)w[i + 1] : 0;
        bool first = i == 0;
        if ((all || first) && a == 0xc3 && b >= 0xa0 && b <= 0xbe && b != 0xb7) {
            out[o++] = (char)0xc3, out[o++] = (char)(b - 0x20), i++, changed = true;
        } else if ((all || first) && a == 0xd0 && b >= 0xb0 && b <= 0xbf) {
            out[o++] = (char)0xd0, out[o++] = (char)(b - 0x20), i++, changed = true;
        } else if ((all || first) && a == 0xd1 && b >= 0x80 && b <= 0x8f) {
            out[o++] = (char)0xd0, out[o++] = (char)(b + 0x20), i++, changed = true;
        } else {
            out[o++] = (char)a;
            if (a >= 0xc0 && b) out[o++] = (char)b, i++;   /* keep a sequence together */
        }
    }
    out[o] = '\0';
    return changed;
}

static bool is_ascii_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* Appends one literal, escaped (bytes outside [A-Za-z0-9 ] as \xHH); a
 * trailing '*' (a prefix entry) is dropped. */
static void emit_word(al_buf_t *b, const char *w, bool prefix_ok)
{
    size_t n = strlen(w);
    if (prefix_ok && n && w[n - 1] == '*') n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)w[i];
        if (c == ' ' && i > 0 && w[i - 1] == '\'') continue;   /* "l' instruction" is "l'instruction" */
        if (c == ' ' || is_ascii_alnum(c)) al_buf_putc(b, (char)c);
        else al_buf_printf(b, "\\x%02x", c);
    }
}

static bool add_pat(char **arena, size_t *left, const char *w, unsigned flags, size_t grp,
                    bool prefix_ok)
{
    if (g_npats == MAX_PATS) return false;
    al_buf_t b;
    al_buf_init(&b, *left);
    emit_word(&b, w, prefix_ok);
    size_t n = b.len;
    if (b.err || !n || n + 1 > *left) {
        al_buf_free(&b);
        return false;
    }
    memcpy(*arena, b.p, n);
    (*arena)[n] = '\0';
    al_buf_free(&b);
    /* the same literal twice in one group adds nothing */
    for (size_t i = g_npats; i-- > 0 && g_pat_grp[i] == grp;)
        if (strcmp(g_pats[i].expr, *arena) == 0) return true;
    g_pats[g_npats].expr = *arena;
    g_pats[g_npats].flags = flags;
    g_pat_grp[g_npats++] = (uint16_t)grp;
    *arena += n + 1;
    *left -= n + 1;
    return true;
}

/* Byte classes, filled once with the table: base64 value or -1, the
 * repetition separators, the two-byte prefixes of the discussion cues. */
static int8_t g_b64[256];
static bool g_sep[256];
static uint64_t g_cue2[2][65536 / 64];   /* [topic]: bytes 0-1 and 1-2 of the cues */
static bool g_norep[256];   /* bytes whose runs are layout, not repetition */
static void build_byte_tables(void);

/* Per step of every rule, filled once: the first bytes of the words an
 * entry compares first (its first word forwards, its last backwards), so
 * a step whose list cannot start at a token is rejected without walking
 * the list, and whether the list names a line break. */
typedef struct cstep {
    uint64_t first[4];   /* bit c: some entry's compared word starts with byte c */
    bool any;            /* an entry matches any word ("*", "") */
    bool nl;             /* the list has "\n" */
} cstep_t;
static cstep_t g_cstep[N_RULES][2][MAX_STEPS];

static void compile_steps(void)
{
    for (size_t r = 0; r < N_RULES; r++)
        for (int side = 0; side < 2; side++) {
            const step_t *st = side ? g_rules[r].fwd : g_rules[r].back;
            for (int k = 0; k < MAX_STEPS && st[k].w; k++) {
                cstep_t *c = &g_cstep[r][side][k];
                for (const char *const *w = st[k].w; *w; w++) {
                    const char *e = *w, *first = e;
                    if (!side)
                        for (const char *q = e; *q; q++)
                            if (*q == ' ') first = q + 1;
                    unsigned char f0 = (unsigned char)first[0];
                    if (e[0] == '\n') c->nl = true;
                    if (!f0 || f0 == '*') c->any = true;
                    else c->first[f0 / 64] |= 1ull << (f0 % 64);
                }
            }
        }
}

static void build_table(void)
{
    build_byte_tables();
    compile_steps();
    char *arena = g_exprbuf;
    size_t left = sizeof(g_exprbuf);
    for (size_t r = 0; r < N_RULES; r++) {
        const void *key = g_rules[r].grp;
        size_t g = 0;
        bool raw = false;
        for (size_t k = 0; k < N_RAW; k++) raw |= key == (const void *)g_raw[k].expr;
        if (raw) continue;
        while (g < g_ngroups && g_groups[g].key != key) g++;
        if (g == g_ngroups) {
            if (g_ngroups == MAX_GROUPS) continue;
            g_groups[g].key = key;
            g_ngroups++;
        }
        if (g_groups[g].n_rules < GRP_RULES) g_groups[g].rules[g_groups[g].n_rules++] = (uint16_t)r;
    }
    for (size_t g = 0; g < g_ngroups; g++) {
        const char *const *w = g_groups[g].key;
        for (size_t i = 0; w[i]; i++) {
            add_pat(&arena, &left, w[i], HS_FLAG_CASELESS, g, true);
            char up[128];
            if (upper_utf8(w[i], up, sizeof up, false))
                add_pat(&arena, &left, up, HS_FLAG_CASELESS, g, true);
            if (upper_utf8(w[i], up, sizeof up, true))
                add_pat(&arena, &left, up, HS_FLAG_CASELESS, g, true);
        }
    }
    for (size_t k = 0; k < N_RAW && g_npats < MAX_PATS; k++) {
        group_t *gr = &g_groups[g_ngroups];
        gr->key = NULL;
        gr->raw = (unsigned)k;
        gr->n_rules = 0;
        for (size_t r = 0; r < N_RULES && gr->n_rules < GRP_RULES; r++)
            if (g_rules[r].grp == (const void *)g_raw[k].expr) gr->rules[gr->n_rules++] = (uint16_t)r;
        if (g_raw[k].lits) {
            for (const char *const *l = g_raw[k].lits; *l; l++)
                add_pat(&arena, &left, *l, g_raw[k].flags, g_ngroups, false);
            g_ngroups++;
            continue;
        }
        g_pats[g_npats].expr = g_raw[k].expr;
        g_pats[g_npats].flags = g_raw[k].flags;
        g_pat_grp[g_npats++] = (uint16_t)g_ngroups++;
    }
}

/* --- the word matcher -------------------------------------------------------- */

#define TOK_MAX 24       /* bytes of a word kept (longer words match nothing) */
#define LOOK_TOKENS 12   /* words looked at on each side of the anchor */
#define LOOK_BYTES 160   /* bytes looked at on each side (whitespace runs count once) */
#define LOOK_SHORT 88    /* the first try backwards (usually 12+ tokens) */
#define MATCH_CALLS_MAX 4096  /* anchor hits examined per scan */

typedef struct tok {
    char w[TOK_MAX];
} tok_t;

/* Width of the UTF-8 space or punctuation at p (0: a word byte or ASCII);
 * *kind: ' ' for spaces, '\'' for an apostrophe, '"' or '-' for others. */
static size_t uni_sep(const unsigned char *p, size_t n, char *kind)
{
    if (n >= 2 && p[0] == 0xc2 && p[1] == 0xa0) return *kind = ' ', 2;
    if (n >= 2 && p[0] == 0xc2 && (p[1] == 0xab || p[1] == 0xbb)) return *kind = '"', 2;
    if (n >= 3 && p[0] == 0xe2 && p[1] == 0x80) {
        unsigned char c = p[2];
        if (c <= 0x8f || c == 0xaf) return *kind = ' ', 3;
        if (c == 0x98 || c == 0x99) return *kind = '\'', 3;
        if (c >= 0x90 && c <= 0x95) return *kind = '-', 3;
        return *kind = '"', 3;
    }
    if (n >= 3 && p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80) return *kind = ' ', 3;
    return 0;
}

static bool word_byte(unsigned char c)
{
    return is_ascii_alnum(c) || c >= 0x80 || c == '_';
}

/* Lower-cases a word into t (ASCII, Latin-1 and Cyrillic capitals). */
static void tok_set(tok_t *t, const unsigned char *p, size_t n)
{
    if (n >= TOK_MAX) {
        memcpy(t->w, "~", 2);
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c >= 'A' && c <= 'Z') c |= 0x20;
        else if (i + 1 < n && c == 0xc3 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9e && p[i + 1] != 0x97) {
            t->w[o++] = (char)c;
            c = (unsigned char)(p[++i] + 0x20);
        } else if (i + 1 < n && c == 0xd0 && p[i + 1] >= 0x90 && p[i + 1] <= 0xaf) {
            unsigned char d = p[++i];
            if (d <= 0x9f) {
                t->w[o++] = (char)0xd0;
                c = (unsigned char)(d + 0x20);
            } else {
                t->w[o++] = (char)0xd1;
                c = (unsigned char)(d - 0x20);
            }
        }
        t->w[o++] = (char)c;
    }
    t->w[o] = '\0';
}

/* Tokenizes text[s, e) into words and punctuation; keeps at most max
 * tokens (the first ones, or the last ones when keep_last).  French
 * elisions (l', d', qu'...) become their own token.  Returns the count. */
static int tokenize(const char *text, size_t s, size_t e, tok_t *out, int max, bool keep_last,
                    bool *cut)
{
    const unsigned char *t = (const unsigned char *)text;
    int n = 0;
    size_t i = s;
    unsigned char wb[64];
    int head = 0;
    *cut = false;
    while (i < e) {
        char kind = 0;
        size_t u = t[i] >= 0x80 ? uni_sep(t + i, e - i, &kind) : 0;
        unsigned char c = t[i];
        if ((u && kind == ' ') || c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            i += u ? u : 1;
            continue;
        }
        tok_t tk[2];
        int nt = 1;
        if (c == '\n') {
            memcpy(tk[0].w, "\n", 2);
            i++;
        } else if (word_byte(c) && !u) {
            size_t wn = 0;
            while (i < e) {
                char k2 = 0;
                size_t u2 = t[i] >= 0x80 ? uni_sep(t + i, e - i, &k2) : 0;
                bool inner = i + 1 < e && wn > 0;
                if (u2 && k2 == '\'' && inner && word_byte(t[i + u2 < e ? i + u2 : i])) {
                    if (wn < sizeof wb) wb[wn] = '\'';
                    wn++;
                    i += u2;
                } else if (!u2 && word_byte(t[i])) {
                    if (wn < sizeof wb) wb[wn] = t[i];
                    wn++;
                    i++;
                } else if (!u2 && t[i] == '\'' && wn > 0 && (i + 1 >= e || word_byte(t[i + 1]))) {
                    /* an elision at the end of the window ("l'" before the anchor) */
                    if (wn < sizeof wb) wb[wn] = t[i];
                    wn++;
                    i++;
                } else if (!u2 && t[i] == '-' && inner && word_byte(t[i + 1])) {
                    if (wn < sizeof wb) wb[wn] = t[i];
                    wn++;
                    i++;
                } else {
                    break;
                }
            }
            if (wn > sizeof wb) wn = sizeof wb;
            size_t el = 0;
            if (wn > 2 && wb[1] == '\'' && strchr("ldjntcsm", wb[0] | 0x20)) el = 2;
            else if (wn > 3 && (wb[0] | 0x20) == 'q' && (wb[1] | 0x20) == 'u' && wb[2] == '\'')
                el = 3;
            if (el) {
                tok_set(&tk[0], wb, el);
                tok_set(&tk[1], wb + el, wn - el);
                nt = 2;
            } else {
                tok_set(&tk[0], wb, wn);
            }
        } else {
            tk[0].w[0] = u ? kind : (char)c;
            tk[0].w[1] = '\0';
            i += u ? u : 1;
        }
        for (int k = 0; k < nt; k++) {
            if (n < max) {
                out[n++] = tk[k];
            } else if (keep_last) {
                /* a ring: the oldest token is overwritten, rotated at the end */
                out[head] = tk[k];
                head = head + 1 == max ? 0 : head + 1;
                *cut = true;
            } else {
                *cut = true;
                return n;
            }
        }
    }
    if (head) {
        tok_t tmp[64];
        int h = head > 64 ? 64 : head;
        memcpy(tmp, out, (size_t)h * sizeof(*out));
        memmove(out, out + h, (size_t)(n - h) * sizeof(*out));
        memcpy(out + n - h, tmp, (size_t)h * sizeof(*out));
    }
    return n;
}

static bool is_punct_tok(const char *w)
{
    return w[0] && !w[1] && !word_byte((unsigned char)w[0]);
}

/* Does the single word entry e match token w? */
static bool word_eq(const char *e, size_t en, const char *w)
{
    if (en == 1 && e[0] == '*') return !is_punct_tok(w) && w[0] != '^' && w[0] != '$';
    if (en && e[en - 1] == '*') return strncmp(w, e, en - 1) == 0;
    return strlen(w) == en && memcmp(w, e, en) == 0;
}

/* Matches entry e (a word or a phrase) at t[j]; returns the index after
 * it, or -1.  dir < 0: t runs away from the anchor backwards, so a phrase
 * is read from its last word. */
static int entry_at(const char *e, const tok_t *t, int nt, int j, int dir)
{
    /* quick reject on the first letter of the word compared first (the
     * last one backwards): most entries of a list fail here */
    if (!e[0]) return j;
    if (j >= nt) return -1;
    const char *first = e;
    if (dir < 0)
        for (const char *q = e; *q; q++)
            if (*q == ' ') first = q + 1;
    if (first[0] != '*' && first[0] != t[j].w[0]) return -1;
    const char *words[8];
    size_t lens[8];
    int nw = 0;
    const char *p = e;
    while (*p && nw < 8) {
        const char *sp = strchr(p, ' ');
        size_t l = sp ? (size_t)(sp - p) : strlen(p);
        words[nw] = p;
        lens[nw++] = l;
        p += l + (sp ? 1 : 0);
    }
    for (int k = 0; k < nw; k++) {
        int wi = dir > 0 ? k : nw - 1 - k;
        while (k > 0 && j < nt && t[j].w[0] == '\n' && !(lens[wi] == 1 && words[wi][0] == '\n')) j++;
        if (j >= nt || !word_eq(words[wi], lens[wi], t[j].w)) return -1;
        j++;
    }
    return j;
}

/* One repetition of a step at t[j]: the index after it or -1.  A line
 * break is skipped unless the step names it. */
static int step_once(const step_t *s, const cstep_t *cs, const tok_t *t, int nt, int j,
                     int dir)
{
    if (j < nt && t[j].w[0] == '\n' && !cs->nl) j++;
    if (j >= nt) {
        /* only an empty entry could match past the end */
        if (!cs->any) return -1;
    } else if (!cs->any) {
        unsigned char c = (unsigned char)t[j].w[0];
        if (!(cs->first[c / 64] & (1ull << (c % 64)))) return -1;
    }
    for (const char *const *w = s->w; *w; w++) {
        int r = entry_at(*w, t, nt, j, dir);
        if (r >= 0) return r;
    }
    return -1;
}

static bool steps_match(const step_t *s, const cstep_t *cs, const tok_t *t, int nt, int j,
                        int dir, int depth)
{
    if (!s->w || depth >= MAX_STEPS) return true;
    int pos[9];
    int k = 0;
    pos[0] = j;
    while (k < s->max && k < 8) {
        int r = step_once(s, cs, t, nt, pos[k], dir);
        if (r < 0) break;
        pos[++k] = r;
    }
    for (int c = k; c >= (int)s->min; c--)
        if (steps_match(s + 1, cs + 1, t, nt, pos[c], dir, depth + 1)) return true;
    return false;
}

/* Per-thread record of the rules that fired for a state (a rule counts
 * once per scan, as a single-match pattern did) and of the work done. */
#define FIRED_WORDS ((N_RULES + N_RAW + 63) / 64)
typedef struct fired {
    const al_inject_state_t *st;
    uint32_t calls;
    uint64_t bits[FIRED_WORDS];
} fired_t;
static __thread fired_t t_fired[4];
static __thread unsigned t_fired_next;

static fired_t *fired_for(const al_inject_state_t *st, bool reset)
{
    for (unsigned i = 0; i < 4; i++)
        if (t_fired[i].st == st) {
            if (reset) memset(&t_fired[i], 0, sizeof(t_fired[i])), t_fired[i].st = st;
            return &t_fired[i];
        }
    fired_t *f = &t_fired[t_fired_next++ % 4];
    memset(f, 0, sizeof(*f));
    f->st = st;
    return f;
}

/* --- tunables ----------------------------------------------------------- */

#define EXTRA_HIT_KEEP 0.8     /* each further distinct hit keeps 80% of what is left */
#define DISCUSS_MAX 0.6        /* "talking about injection" removes at most this much */
#define DISCUSS_LEN 1000       /* ... in a text up to this long, less beyond */
#define DECODE_MAX_BLOBS 16    /* base64 blobs decoded per text */
#define DECODE_MAX_BYTES 65536 /* decoded bytes rescanned per text */
#define B64_MIN 24
#define DECODE_MIN_GAIN 0.45 /* decoded evidence that also counts for the wrapper */
#define MAX_NEST 2

static const char *const g_fam_names[AL_INJ_NFAM] = {
    "override", "jailbreak", "extraction", "fake_role", "encoded", "invisible", "repetition",
};

size_t al_inject_patterns(const al_pat_t **out)
{
    pthread_once(&g_once, build_table);
    *out = g_pats;
    return g_npats;
}

const char *al_inject_family_name(unsigned fam)
{
    return fam < AL_INJ_NFAM ? g_fam_names[fam] : "unknown";
}

void al_inject_begin(al_inject_state_t *st)
{
    memset(st, 0, sizeof(*st));
    fired_for(st, true);
}

static void add_evidence(al_inject_state_t *st, unsigned fam, double w)
{
    if (fam >= AL_INJ_NFAM || w <= 0) return;
    if (st->hits[fam] < UINT16_MAX) st->hits[fam]++;
    if (w > st->weight[fam]) st->weight[fam] = w;
    st->families |= 1u << fam;
}

/* The tokens before text[ws], nearest first, into back[LOOK_TOKENS + 1];
 * "^" ends them at the start of the text.  Returns the count. */
static int back_tokens(const char *text, size_t ws, tok_t *back)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t s = ws > LOOK_BYTES ? ws - LOOK_BYTES : 0;
    while (s > 0 && s < ws && (t[s] & 0xc0) == 0x80) s++;   /* not inside a character */
    bool cut = false;
    tok_t tmp[LOOK_TOKENS];
    int n = -1;
    /* Most windows hold more tokens than are kept: try a short one first,
     * started at a space (where any tokenization is at a boundary, so its
     * tokens are the full window's); if it fills up, they are the same
     * last tokens. */
    if (ws >= s + LOOK_SHORT + 16) {
        size_t s2 = ws - LOOK_SHORT;
        while (s2 < ws && t[s2] != ' ' && t[s2] != '\t' && t[s2] != '\n' && t[s2] != '\r') s2++;
        if (s2 < ws) {
            n = tokenize(text, s2, ws, tmp, LOOK_TOKENS, true, &cut);
            if (!cut) n = -1;
        }
    }
    if (n < 0) n = tokenize(text, s, ws, tmp, LOOK_TOKENS, true, &cut);
    int first = (s > 0 && !cut && n > 0) ? 1 : 0;   /* the first word may be cut */
    int nb = 0;
    for (int i = n - 1; i >= first; i--) back[nb++] = tmp[i];
    if (s == 0 && !cut) memcpy(back[nb++].w, "^", 2);
    return nb;
}

static bool in_self(const char *const *l, const char *e)
{
    for (; *l; l++)
        if (strcmp(*l, e) == 0) return true;
    return false;
}

/* Tries the rules of group g at an anchor that ends at text[to]. */
static void run_rules(al_inject_state_t *st, fired_t *f, const group_t *g, const char *text,
                      size_t len, size_t to)
{
    const unsigned char *t = (const unsigned char *)text;
    bool pending = false;
    for (unsigned k = 0; k < g->n_rules; k++)
        pending |= !(f->bits[g->rules[k] / 64] & (1ull << (g->rules[k] % 64)));
    if (!pending || f->calls >= MATCH_CALLS_MAX) return;
    f->calls++;
    /* the anchor word: back and forth from the reported end */
    size_t ws = to, we = to;
    tok_t anchor = {{0}};
    if (g->key) {
        while (ws > 0 && to - ws < 64 && word_byte(t[ws - 1]) && !(t[ws - 1] >= 0x80 && ws >= 2 && t[ws - 2] == 0xc2 && t[ws - 1] == 0xa0)) ws--;
        while (we < len && we - to < 64) {
            char kind = 0;
            size_t u = t[we] >= 0x80 ? uni_sep(t + we, len - we, &kind) : 0;
            if (u || !(word_byte(t[we]) || ((t[we] == '-' || t[we] == '\'') && we + 1 < len &&
                                              word_byte(t[we + 1]))))
                break;
            we++;
        }
        size_t el = 0;   /* "l'instruction": the elision is not part of the word */
        if (we - ws > 2 && t[ws + 1] == '\'') el = 2;
        tok_set(&anchor, t + ws + el, we - ws - el);
    }
    tok_t back[LOOK_TOKENS + 1], fwd[LOOK_TOKENS + 1];
    int nb = -1, nf = -1, skip = 0;
    const char *me = NULL;   /* the group entry that matched */
    if (g->key) {
        for (const char *const *e = g->key; *e && !me; e++) {
            const char *sp = NULL;
            for (const char *q = *e; *q; q++)
                if (*q == ' ') sp = q;
            const char *last = sp ? sp + 1 : *e;
            if (last[0] != '*' && last[0] != anchor.w[0]) continue;
            if (!word_eq(last, strlen(last), anchor.w)) continue;
            if (!sp) {
                me = *e;
                break;
            }
            if (nb < 0) nb = back_tokens(text, ws, back);
            /* the words before the last one, read backwards */
            size_t n = (size_t)(sp - *e);
            char tmp[64];
            if (n >= sizeof tmp) continue;
            memcpy(tmp, *e, n);
            tmp[n] = '\0';
            int r = entry_at(tmp, back, nb, 0, -1);
            if (r >= 0) {
                me = *e;
                skip = r;
            }
        }
        if (!me) return;
    }
    for (unsigned k = 0; k < g->n_rules; k++) {
        unsigned ri = g->rules[k];
        const rule_t *r = &g_rules[ri];
        if (f->bits[ri / 64] & (1ull << (ri % 64))) continue;
        if (r->self && !in_self(r->self, me ? me : anchor.w)) continue;
        if (r->back[0].w && nb < 0) nb = back_tokens(text, ws, back);
        if (r->fwd[0].w && nf < 0) {
            size_t e = AL_MIN(len, we + LOOK_BYTES);
            bool cut = false;
            nf = tokenize(text, we, e, fwd, LOOK_TOKENS, false, &cut);
            if (e == len && !cut) memcpy(fwd[nf++].w, "$", 2);
        }
        if (r->back[0].w && !steps_match(r->back, g_cstep[ri][0], back, nb, skip, -1, 0)) continue;
        if (r->fwd[0].w && !steps_match(r->fwd, g_cstep[ri][1], fwd, nf, 0, 1, 0)) continue;
        f->bits[ri / 64] |= 1ull << (ri % 64);
        add_evidence(st, r->fam, r->weight / 100.0);
    }
}

void al_inject_on_match(al_inject_state_t *st, unsigned id, const char *text, size_t len,
                        size_t from, size_t to)
{
    (void)from;
    pthread_once(&g_once, build_table);
    if (!st || id >= g_npats) return;
    const group_t *g = &g_groups[g_pat_grp[id]];
    if (!g->key) {
        const struct raw *m = &g_raw[g->raw];
        /* Special tokens are also counted for the repetition family; its
         * weight is set in al_inject_end from the count. */
        if (m->kind == T_TOKEN && st->hits[AL_INJ_REPETITION] < UINT16_MAX)
            st->hits[AL_INJ_REPETITION]++;
        if (m->check && (!text || to > len || !m->check(text, len, to))) return;
        if (m->weight && m->kind == T_TOKEN) {
            /* a repeated token is not a new feature */
            if (!((st->families & (1u << m->fam)) && st->weight[m->fam] >= m->weight / 100.0))
                add_evidence(st, m->fam, m->weight / 100.0);
        } else if (m->weight) {
            /* one feature per expression per scan, whichever literal hit */
            fired_t *f = fired_for(st, false);
            size_t bit = N_RULES + g->raw;
            if (!(f->bits[bit / 64] & (1ull << (bit % 64)))) {
                f->bits[bit / 64] |= 1ull << (bit % 64);
                add_evidence(st, m->fam, m->weight / 100.0);
            }
        }
        if (!g->n_rules) return;
    }
    if (!text || to > len) return;
    run_rules(st, fired_for(st, false), g, text, len, to);
}

/* --- byte helpers --------------------------------------------------------- */

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

static bool is_alpha(unsigned char c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

/* --- talking about injection rather than doing it ------------------------- */

/* A quote mark followed by an override verb, the quote closing within 160
 * bytes: the text mentions an attack phrase ("what does 'ignore previous
 * instructions' do?").  Returns the number of such mentions. */
/* Does any of the 8 bytes at p equal one that can open a quote (" ` '
 * or the lead bytes 0xe2 0xc2)?  Exact, word-at-a-time. */
static bool maybe_quote8(const unsigned char *p)
{
    static const unsigned char q[] = {'"', '`', '\'', 0xe2, 0xc2};
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t x;
    memcpy(&x, p, 8);
    for (size_t k = 0; k < sizeof q; k++) {
        uint64_t v = x ^ (ones * q[k]);
        if ((v - ones) & ~v & highs) return true;
    }
    return false;
}

static unsigned quoted_mentions(const char *p, size_t len)
{
    static const char *const verbs[] = {"ignore", "disregard", "forget", "ignoriere",
                                        "vergiss", "oublie", "olvida", "ignora",
                                        "you are now", "repeat your", "reveal your", "print your",
                                        "system:", "<|im_start|>"};
    const unsigned char *t = (const unsigned char *)p;
    unsigned n = 0;
    for (size_t i = 0; i < len; i++) {
        /* eight bytes at a time while none can open a quote */
        while (i + 8 <= len && !maybe_quote8(t + i)) i += 8;
        if (i >= len) break;
        size_t q = 0;  /* length of the opening quote */
        unsigned char c = t[i];
        if (c == '"' || c == '`') q = 1;
        else if (c == '\'' && (i == 0 || !is_alpha(t[i - 1]))) q = 1;
        else if (c == 0xe2 && i + 2 < len && t[i + 1] == 0x80 &&
                 (t[i + 2] == 0x9c || t[i + 2] == 0x98 || t[i + 2] == 0x9e))
            q = 3;                                 /* “ ‘ „ */
        else if (c == 0xc2 && i + 1 < len && t[i + 1] == 0xab) q = 2;  /* « */
        if (!q) continue;
        size_t j = i + q;
        while (j < len && (t[j] == ' ' || t[j] == '\t')) j++;
        for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++) {
            size_t vn = strlen(verbs[v]);
            if (j + vn > len) continue;
            size_t k = 0;
            while (k < vn && lower(t[j + k]) == (unsigned char)verbs[v][k]) k++;
            if (k < vn) continue;
            /* the closing quote must come, on the same paragraph */
            size_t end = AL_MIN(len, j + 160);
            for (size_t e = j + vn; e < end; e++) {
                if (t[e] == '\n' && e + 1 < len && t[e + 1] == '\n') break;
                if (t[e] == '"' || t[e] == '`' || t[e] == '\'' ||
                    (t[e] == 0xe2 && e + 2 < len && t[e + 1] == 0x80 &&
                     (t[e + 2] == 0x9d || t[e + 2] == 0x99 || t[e + 2] == 0x9c)) ||
                    (t[e] == 0xc2 && e + 1 < len && t[e + 1] == 0xbb)) {
                    n++;
                    break;
                }
            }
            break;
        }
    }
    return n;
}

typedef struct cue {
    const char *s;   /* lower case */
    uint8_t w;       /* percent */
    bool topic;      /* about attacks; generic cues count only next to one */
} cue_t;

static const cue_t g_cues[] = {
    {"prompt injection", 45, true},    {"prompt-injection", 45, true},
    {"injection attack", 45, true},    {"prompt hacking", 40, true},
    {"jailbreak attack", 40, true},    {"jailbreak attempt", 40, true},
    {"red team", 35, true},            {"red-team", 35, true},
    {"adversarial", 30, true},         {"attacker", 30, true},
    {"classifier", 30, true},          {"mitigat", 30, true},
    {"injection de prompt", 45, true}, {"inyección de prompt", 45, true},
    {"#include", 30, true},            {"console.log", 30, true},
    {"regex", 30, true},               {"grep ", 30, true},
    {"if (", 25, true},                {"def ", 20, true},
    {"print(", 20, true},              {"for example", 20, false},
    {"e.g.", 20, false},               {"such as", 15, false},
    {"phrases like", 35, false},       {"phrase like", 35, false},
    {"the phrase", 30, false},         {"the string", 30, false},
    {"strings like", 35, false},       {"the word", 20, false},
    {"how does", 20, false},           {"how do ", 20, false},
    {"what is", 15, false},            {"what does", 20, false},
    {"why do", 15, false},             {"explain", 20, false},
    {"detect", 25, false},             {"security", 20, false},
    {"malicious", 20, false},          {"defend", 20, false},
    {"zum beispiel", 20, false},       {"wie funktioniert", 20, false},
    {"par exemple", 20, false},        {"comment fonctionne", 20, false},
    {"por ejemplo", 20, false},        {"cómo funciona", 20, false},
};

enum { NCUES = sizeof(g_cues) / sizeof(g_cues[0]) };

/* Marks in found the cues of one kind (topic or generic) in the text: one
 * pass, at each byte only the cues starting with its two bytes are tried. */
static void find_cues(const unsigned char *t, size_t len, bool topic, bool *found)
{
    int16_t head[256], next[NCUES];   /* cues by their first byte, a list each */
    for (size_t c = 0; c < 256; c++) head[c] = -1;
    size_t left = 0;
    for (size_t k = NCUES; k-- > 0;) {
        if (g_cues[k].topic != topic) continue;
        unsigned char f0 = (unsigned char)g_cues[k].s[0];
        next[k] = head[f0];
        head[f0] = (int16_t)k;
        left++;
    }
    /* Every cue is 3+ bytes long, so one starting at s has its first or
     * second two bytes at an even offset: only even offsets are looked up
     * (in the set of both), and a hit tries the cues starting there and
     * one byte before. */
    const uint64_t *bm = g_cue2[topic];
    for (size_t i = 0; i + 1 < len && left; i += 2) {
        unsigned key = (unsigned)lower(t[i]) << 8 | lower(t[i + 1]);
        if (!(bm[key / 64] & (1ull << (key % 64)))) continue;
        for (size_t s = i ? i - 1 : 0; s <= i && s + 1 < len; s++) {
            unsigned char c0 = lower(t[s]), c1 = lower(t[s + 1]);
            for (int16_t k = head[c0]; k >= 0; k = next[k]) {
                const char *n = g_cues[k].s;
                if (found[k] || (unsigned char)n[1] != c1) continue;
                size_t j = 1;
                while (n[j] && s + j < len && lower(t[s + j]) == (unsigned char)n[j]) j++;
                if (!n[j]) {
                    found[k] = true;
                    left--;
                }
            }
        }
    }
}

/* How strongly the text talks about injection, in [0, DISCUSS_MAX]: 0
 * without a topic cue or a quoted attack phrase, so the generic cues are
 * only looked for when one is there. */
static double discussion(const char *p, size_t len)
{
    double keep_topic = 1.0, keep_gen = 1.0;
    unsigned q = quoted_mentions(p, len);
    if (q) keep_topic *= 0.55;
    bool found[NCUES] = {false};
    const unsigned char *t = (const unsigned char *)p;
    find_cues(t, len, true, found);
    bool topic = q > 0;
    for (size_t i = 0; i < NCUES && !topic; i++) topic = found[i];
    if (!topic) return 0.0;
    find_cues(t, len, false, found);
    for (size_t i = 0; i < NCUES; i++) {
        if (!found[i]) continue;
        double w = g_cues[i].w / 100.0;
        if (g_cues[i].topic) keep_topic *= 1.0 - w;
        else keep_gen *= 1.0 - w;
    }
    if (keep_topic >= 1.0) return 0.0;
    double d = 1.0 - keep_topic * keep_gen;
    /* a question about injection is short; a long text that mentions it
     * in passing (jailbreaks do) is dampened less */
    if (len > DISCUSS_LEN) d *= (double)DISCUSS_LEN / (double)len;
    return d > DISCUSS_MAX ? DISCUSS_MAX : d;
}

/* --- decoded payloads ------------------------------------------------------ */

typedef struct dctx {
    al_inject_rescan_fn rescan;
    void *ud;
    size_t blobs;     /* base64 blobs decoded so far */
    size_t budget;    /* decoded bytes still allowed */
} dctx_t;

static void process(al_inject_state_t *st, dctx_t *d, const char *p, size_t len, int level);

/* Rescans a payload; evidence that is new (a family's weight rose) also
 * counts for fam, and hit counts are not inflated by features the outer
 * text already showed. */
static void rescan_payload(al_inject_state_t *st, dctx_t *d, const char *p, size_t n,
                           unsigned fam, int level)
{
    if (!n || !d->rescan || n > d->budget) return;
    d->budget -= n;
    al_inject_state_t before = *st;
    d->rescan(d->ud, st, p, n);
    double gained = 0;
    for (unsigned f = 0; f < AL_INJ_NFAM; f++) {
        if (st->weight[f] > before.weight[f]) {
            if (st->weight[f] > gained) gained = st->weight[f];
            st->hits[f] = (uint16_t)(before.hits[f] + (before.hits[f] < UINT16_MAX));
        } else {
            st->hits[f] = before.hits[f];
        }
    }
    /* weak evidence (a lone adjective) does not make the wrapping suspect */
    if (gained >= DECODE_MIN_GAIN && fam < AL_INJ_NFAM) add_evidence(st, fam, gained);
    if (level < MAX_NEST) process(st, d, p, n, level + 1);
}

/* Byte classes, filled once (build_table): base64 value or -1, the
 * repetition separators, the two-byte prefixes of the discussion cues. */

static void build_byte_tables(void)
{
    for (int c = 0; c < 256; c++) {
        int v = -1;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '+' || c == '-') v = 62;
        else if (c == '/' || c == '_') v = 63;
        g_b64[c] = (int8_t)v;
        g_norep[c] = c == 0 || (c < 128 && strchr(" \t\r\n-=_*#.~+/|<>", c) != NULL);
        g_sep[c] = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '.' ||
                   c == ';' || c == '!' || c == '?';
    }
    for (size_t k = 0; k < sizeof(g_cues) / sizeof(g_cues[0]); k++) {
        unsigned key = (unsigned)(unsigned char)g_cues[k].s[0] << 8 | (unsigned char)g_cues[k].s[1];
        g_cue2[g_cues[k].topic][key / 64] |= 1ull << (key % 64);
        /* and the second two bytes (find_cues looks at even offsets only) */
        key = (unsigned)(unsigned char)g_cues[k].s[1] << 8 | (unsigned char)g_cues[k].s[2];
        g_cue2[g_cues[k].topic][key / 64] |= 1ull << (key % 64);
    }
}

static int b64_val(unsigned char c)
{
    return g_b64[c];
}

/* Decoded text worth rescanning: mostly printable, mostly letters and
 * spaces (images, keys and hashes decode to noise). */
static bool looks_textual(const unsigned char *p, size_t n)
{
    size_t print = 0, alpha = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if ((c >= 0x20 && c < 0x7f) || c == '\n' || c == '\r' || c == '\t' || c >= 0x80) print++;
        if (is_alpha(c) || c == ' ' || c >= 0x80) alpha++;
    }
    return n >= 8 && print * 10 >= n * 9 && alpha * 10 >= n * 6;
}

static void scan_base64(al_inject_state_t *st, dctx_t *d, const char *text, size_t len,
                        int level)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t i = 0;
    /* i is at the start of a possible run (t[i - 1] is no base64 byte): a
     * run worth a look has B64_MIN base64 bytes from i, so the window is
     * checked from its end and the scan jumps past the last byte that is
     * not base64 (most windows hold a space: words are skipped at once) */
    while (i + B64_MIN <= len && d->blobs < DECODE_MAX_BLOBS) {
        size_t q = i + B64_MIN;
        while (q > i && g_b64[t[q - 1]] >= 0) q--;
        if (q > i) {
            i = q;
            continue;
        }
        size_t s = i;
        i += B64_MIN;
        while (i < len && g_b64[t[i]] >= 0) i++;
        size_t n = i - s;
        if (i < len) i++;   /* the byte ending the run is not base64 */
        bool up = false, lo = false;
        for (size_t k = s; k < i && !(up && lo); k++) {
            up |= t[k] >= 'A' && t[k] <= 'Z';
            lo |= t[k] >= 'a' && t[k] <= 'z';
        }
        if (!up || !lo) continue;
        /* a base64 run is not part of a longer word-and-punctuation token */
        size_t m = n - (n % 4 == 1);       /* a lone trailing sextet carries nothing */
        size_t cap = m / 4 * 3 + 3;
        if (cap > d->budget) cap = d->budget;
        if (cap < 8) return;
        unsigned char *out = malloc(cap);
        if (!out) return;
        size_t o = 0;
        uint32_t acc = 0;
        int bits = 0;
        for (size_t k = 0; k < m && o < cap; k++) {
            acc = (acc << 6) | (uint32_t)b64_val(t[s + k]);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                out[o++] = (unsigned char)(acc >> bits);
                acc &= (1u << bits) - 1;
            }
        }
        d->blobs++;
        if (looks_textual(out, o))
            rescan_payload(st, d, (const char *)out, o, AL_INJ_ENCODED, level);
        free(out);
    }
}

/* Invisible characters: Unicode tags (decoded to ASCII unless they spell a
 * flag after U+1F3F4), zero-width characters inside words, bidi controls.
 * The text with all of them removed, and the decoded tags, are rescanned. */
static void scan_invisible(al_inject_state_t *st, dctx_t *d, const char *text, size_t len,
                           int level)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t tags = 0, zw_word = 0, bidi = 0, removed = 0;
    bool in_flag = false;
    for (size_t i = 0; i < len; i++) {
        /* plain ASCII, eight bytes at a time */
        while (i + 8 <= len) {
            uint64_t w8;
            memcpy(&w8, t + i, 8);
            if (w8 & 0x8080808080808080ull) break;
            in_flag = false;
            i += 8;
        }
        if (i >= len) break;
        if (t[i] < 0x80) {
            in_flag = false;         /* a flag's tags follow U+1F3F4 at once */
            continue;
        }
        if (i + 3 < len && t[i] == 0xf0 && t[i + 1] == 0x9f && t[i + 2] == 0x8f &&
            t[i + 3] == 0xb4) {
            in_flag = true;          /* U+1F3F4, a subdivision flag may follow */
            i += 3;
            continue;
        }
        if (i + 3 < len && t[i] == 0xf3 && t[i + 1] == 0xa0 &&
            (t[i + 2] == 0x80 || t[i + 2] == 0x81)) {
            removed++;
            if (!in_flag) tags++;
            if (t[i + 2] == 0x81 && t[i + 3] == 0xbf) in_flag = false;  /* CANCEL TAG */
            i += 3;
            continue;
        }
        in_flag = false;
        size_t w = 0;
        bool zw = false, bd = false;
        if (i + 2 < len && t[i] == 0xe2 && t[i + 1] == 0x80 && t[i + 2] >= 0x8b && t[i + 2] <= 0x8d)
            zw = true, w = 3;
        else if (i + 2 < len && t[i] == 0xe2 && t[i + 1] == 0x81 && t[i + 2] == 0xa0)
            zw = true, w = 3;
        else if (i + 2 < len && t[i] == 0xef && t[i + 1] == 0xbb && t[i + 2] == 0xbf && i > 0)
            zw = true, w = 3;
        else if (i + 2 < len && t[i] == 0xe1 && t[i + 1] == 0xa0 && t[i + 2] == 0x8e)
            zw = true, w = 3;
        else if (i + 1 < len && t[i] == 0xc2 && t[i + 1] == 0xad)
            zw = true, w = 2;
        else if (i + 2 < len && t[i] == 0xe2 && t[i + 1] == 0x80 && t[i + 2] >= 0xaa &&
                 t[i + 2] <= 0xae)
            bd = true, w = 3;
        else if (i + 2 < len && t[i] == 0xe2 && t[i + 1] == 0x81 && t[i + 2] >= 0xa6 &&
                 t[i + 2] <= 0xa9)
            bd = true, w = 3;
        if (!w) continue;
        removed++;
        /* soft hyphens inside words are ordinary hyphenation: stripped for
         * the rescan, not evidence */
        if (zw && w == 3 && i > 0 && i + w < len && is_alpha(t[i - 1]) && is_alpha(t[i + w]))
            zw_word++;
        if (bd) bidi++;
        i += w - 1;
    }
    if (!removed) return;
    if (tags) add_evidence(st, AL_INJ_INVISIBLE, tags >= 8 ? 0.7 : 0.55);
    if (zw_word >= 3) add_evidence(st, AL_INJ_INVISIBLE, zw_word >= 8 ? 0.6 : 0.45);
    if (bidi) add_evidence(st, AL_INJ_INVISIBLE, bidi >= 3 ? 0.5 : 0.35);
    if (!d->rescan) return;

    size_t cap = AL_MIN(len, d->budget);
    char *plain = malloc(cap ? cap : 1);
    char *tagtxt = tags ? malloc(tags) : NULL;
    if (!plain || (tags && !tagtxt)) {
        free(plain);
        free(tagtxt);
        return;
    }
    size_t np = 0, nt = 0;
    in_flag = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = t[i];
        size_t w = 0;
        if (c < 0x80) in_flag = false;
        if (c >= 0x80) {
            if (i + 3 < len && c == 0xf0 && t[i + 1] == 0x9f && t[i + 2] == 0x8f &&
                t[i + 3] == 0xb4)
                in_flag = true;
            else if (i + 3 < len && c == 0xf3 && t[i + 1] == 0xa0 &&
                     (t[i + 2] == 0x80 || t[i + 2] == 0x81)) {
                unsigned cp = ((unsigned)(t[i + 2] & 0x3f) << 6) | (t[i + 3] & 0x3f);
                if (!in_flag && tagtxt && nt < tags && cp >= 0x20 && cp < 0x7f)
                    tagtxt[nt++] = (char)cp;
                if (cp == 0x7f) in_flag = false;
                i += 3;
                continue;
            } else {
                in_flag = false;
            }
            if (i + 2 < len && c == 0xe2 && t[i + 1] == 0x80 &&
                ((t[i + 2] >= 0x8b && t[i + 2] <= 0x8d) || (t[i + 2] >= 0xaa && t[i + 2] <= 0xae)))
                w = 3;
            else if (i + 2 < len && c == 0xe2 && t[i + 1] == 0x81 &&
                     (t[i + 2] == 0xa0 || (t[i + 2] >= 0xa6 && t[i + 2] <= 0xa9)))
                w = 3;
            else if (i + 2 < len && c == 0xef && t[i + 1] == 0xbb && t[i + 2] == 0xbf)
                w = 3;
            else if (i + 2 < len && c == 0xe1 && t[i + 1] == 0xa0 && t[i + 2] == 0x8e)
                w = 3;
            else if (i + 1 < len && c == 0xc2 && t[i + 1] == 0xad)
                w = 2;
        }
        if (w) {
            i += w - 1;
            continue;
        }
        if (np < cap) plain[np++] = (char)c;
    }
    if (nt >= 4) rescan_payload(st, d, tagtxt, nt, AL_INJ_INVISIBLE, level);
    if (np && np < len) rescan_payload(st, d, plain, np, AL_INJ_INVISIBLE, level);
    free(plain);
    free(tagtxt);
}

static void process(al_inject_state_t *st, dctx_t *d, const char *p, size_t len, int level)
{
    scan_invisible(st, d, p, len, level);
    scan_base64(st, d, p, len, level);
}

/* --- repetition ---------------------------------------------------------- */

static bool is_sep(unsigned char c)
{
    return g_sep[c];
}

static void repetition(al_inject_state_t *st, const char *text, size_t len, unsigned tokens)
{
    const unsigned char *t = (const unsigned char *)text;
    double w = 0;
    if (tokens >= 12) w = 0.85;
    else if (tokens >= 6) w = 0.7;
    else if (tokens >= 3) w = 0.5;

    /* the longest run of one byte (separators and drawing characters aside) */
    /* Only runs of 128+ count: such a run holds two bytes 64 apart at
     * multiples of 64, so only those samples are compared, and a run is
     * measured only where two samples agree. */
    size_t best = 0;
    for (size_t p = 0; p + 64 < len; p += 64) {
        unsigned char c = t[p];
        if (g_norep[c] || t[p + 64] != c) continue;
        size_t a = p, b = p + 1;
        while (a > 0 && t[a - 1] == c) a--;
        while (b < len && t[b] == c) b++;
        if (b - a > best) best = b - a;
        if (b > p + 64) p = (b - 1) / 64 * 64;   /* resume past this run */
    }
    if (best >= 512 && w < 0.5) w = 0.5;
    else if (best >= 128 && w < 0.35) w = 0.35;

    /* the longest run of one word repeated */
    size_t i = 0, prev_s = 0, prev_n = 0, wrun = 0, wbest = 0;
    while (i < len) {
        while (i < len && is_sep(t[i])) i++;
        size_t s = i;
        while (i < len && !is_sep(t[i])) i++;
        size_t n = i - s;
        if (!n) break;
        if (n == prev_n && n <= 64) {
            size_t k = 0;
            while (k < n && lower(t[s + k]) == lower(t[prev_s + k])) k++;
            wrun = k == n ? wrun + 1 : 1;
        } else {
            wrun = 1;
        }
        if (wrun > wbest) wbest = wrun;
        prev_s = s;
        prev_n = n;
    }
    if (wbest >= 40 && w < 0.6) w = 0.6;
    else if (wbest >= 16 && w < 0.45) w = 0.45;
    if (w > 0) add_evidence(st, AL_INJ_REPETITION, w);
}

/* --- score ---------------------------------------------------------------- */

void al_inject_end(al_inject_state_t *st, const char *text, size_t len, al_inject_rescan_fn rescan,
                   void *ud)
{
    if (!st) return;
    pthread_once(&g_once, build_table);
    if (!text) len = 0;
    /* the special-token count rode in hits[REPETITION]; it becomes evidence
     * in repetition() */
    unsigned tokens = st->hits[AL_INJ_REPETITION];
    st->hits[AL_INJ_REPETITION] = 0;
    st->weight[AL_INJ_REPETITION] = 0;
    st->families &= ~(1u << AL_INJ_REPETITION);

    dctx_t d = {.rescan = rescan, .ud = ud, .blobs = 0, .budget = DECODE_MAX_BYTES};
    if (len) process(st, &d, text, len, 0);
    /* tokens found only inside decoded payloads were restored away above */
    if (len) repetition(st, text, len, tokens);

    /* the discussion cues cost a few passes over the text: only when
     * something fired */
    double disc = len && st->families ? discussion(text, len) : 0.0;
    double keep = 1.0;
    for (unsigned f = 0; f < AL_INJ_NFAM; f++) {
        if (!(st->families & (1u << f)) || st->weight[f] <= 0) continue;
        unsigned extra = st->hits[f] > 1 ? (unsigned)AL_MIN(st->hits[f] - 1, 5) : 0;
        double s = 1.0 - (1.0 - st->weight[f]) * pow(EXTRA_HIT_KEEP, (double)extra);
        keep *= 1.0 - s * (1.0 - disc);
    }
    double score = 1.0 - keep;
    if (score < 0) score = 0;
    if (score > 1) score = 1;
    /* two decimals: stable output, no spurious precision */
    st->score = floor(score * 100.0 + 0.5) / 100.0;
}

