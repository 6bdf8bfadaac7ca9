/* inject.c - the prompt-injection and jailbreak detector.  A table of
 * feature patterns (Vectorscan expressions, byte mode, caseless, with UTF-8
 * literals for the German, French, Spanish and other phrasings) is compiled
 * by the engine into the same database as the PII candidates; each hit
 * records evidence for its family: the hit count and the strongest weight.
 * al_inject_end then adds what a regular expression cannot see: Unicode tag
 * characters (decoded to ASCII and rescanned), zero-width and bidi controls
 * (the text is rescanned with them removed), base64 blobs of 24+ characters
 * that decode to printable text (rescanned, nested at most twice), runs of
 * more than three spaces (rescanned collapsed: the patterns allow at most
 * three between words), special tokens counted across the text, and long
 * repeated runs.  Evidence found
 * only inside a decoded payload also counts for the encoding family.  The
 * score is 1 - prod(1 - s_f * (1 - d)) over the families, where s_f is the
 * family's strongest weight raised a little by further distinct hits and d
 * is how strongly the text reads as talking about injection rather than
 * doing it (quoted attack phrases, "prompt injection", "for example",
 * questions, code).  The weights and the measured figures are in
 * notes/injection.md.  Byte mode rather than HS_FLAG_UTF8: Vectorscan's
 * results on invalid UTF-8 are undefined in UTF-8 mode and the text is
 * hostile; byte-mode literals match UTF-8 text just the same. */
#include "guard/inject.h"
#include "util/common.h"

#include <hs.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* --- building blocks of the expressions ---------------------------------- */

#define S "[\\s\\xc2\\xa0]{1,3}"   /* spaces (U+00A0 too); bounded, which keeps compiling cheap */
#define S0 "[\\s\\xc2\\xa0]{0,3}"
#define W "[^\\s.!?;:,\"]+"         /* a word */

/* English override verbs, the core (used with weak object phrases) and the
 * extended set (only with previous/above/... qualifiers). */
#define V_CORE                                                                            \
    "(?:ignor(?:e|ing)|disregard(?:ing)?|forg[eo]t(?:ting)?|overrid(?:e|ing)|bypass|"     \
    "abandon|dismiss|neglect|disobey|discard|scrap|ditch|unlearn|drop|skip|"              \
    "set" S "aside|put" S "aside|let" S "go" S "of|throw" S "(?:out|away)|pay" S "no" S "(?:attention|heed)" \
    S "to|stop" S "(?:following|obeying|listening" S "to)|(?:do" S "not|don'?t|never|"   \
    "no" S "longer)" S "(?:follow|obey|listen" S "to|adhere" S "to|comply" S "with))"
#define V_EXT "(?:" V_CORE "|remove|delete|erase|clear|wipe|reset|overwrite|leave" S "behind)"
#define DET                                                                               \
    "(?:all|any|every|each|of|the|your|my|these|those|this|that|their|its|our|other|"     \
    "whole|entire|complete|full|such|what|whatever|everything|and)"
#define ADJ                                                                               \
    "(?:previous(?:ly)?|prior|preceding|above|afore-?mentioned|above-?mentioned|earlier|" \
    "former|foregoing|initial|original|old|past|existing|given|provided|last|system|"     \
    "default|current|preset|underlying|hidden|built-?in|programm?ed|received)"
#define OBJ                                                                               \
    "(?:instructions?|instructs|directions?|directives?|orders|commands?|rules|guidelines?|" \
    "guidance|prompts?|programming|constraints|restrictions|polic(?:y|ies)|training|"     \
    "safeguards|protocols|principles|limitations|filters|tasks?|assignments?|"            \
    "conditioning|parameters)"
#define OBJ_WEAK "(?:messages?|texts?|requests?|emails?|answers?|responses?)"
#define OBJ_CTX "(?:context|inputs?|information|conversation|prompts?)"
/* determiners without "my": people take back their own earlier message */
#define DET_NOTMINE                                                                       \
    "(?:all|any|every|each|of|the|your|these|those|this|that|their|its|other|whole|"      \
    "entire|complete|full|such|everything|and)"

#define V_DE                                                                              \
    "(?:ignorier(?:e|en|t)?(?:" S "sie)?|vergiss|vergesst|vergessen" S "sie|"             \
    "missachte(?:n|t)?(?:" S "sie)?|übergehe|verwirf|verwerfen" S "sie|streiche|"          \
    "befolge" S "nicht|beachte" S "nicht|hör(?:e|t)?" S "nicht" S "(?:mehr" S ")?auf|"   \
    "lass(?:en" S "sie)?|setze" S "dich" S "über|setzen" S "sie" S "sich" S "über)"
#define DET_DE                                                                            \
    "(?:alle|alles|all|die|der|den|das|deine|deinen|dein|ihre|ihren|sämtliche|jegliche|"  \
    "jede|meine|diese|obige|obigen)"
#define ADV_DE "(?:jetzt|nun|bitte|einfach|sofort|mal|ab" S "sofort)"
#define ADJ_DE                                                                            \
    "(?:vorherigen?|vorhergehenden?|vorangehenden?|vorangegangenen?|bisherigen?|"         \
    "früheren?|vorigen?|obigen?|ursprünglichen?|alten|gegebenen|erhaltenen|"               \
    "oben" S "genannten|zuvor" S "(?:gegebenen|erhaltenen|genannten))"
#define OBJ_DE                                                                            \
    "(?:anweisung(?:en)?|instruktion(?:en)?|befehle?|aufgaben?|aufträge|auftrag|"          \
    "anordnungen?|regeln|vorgaben|richtlinien|informationen|angaben|prompts?|"            \
    "einschränkungen|vorschriften|eingaben)"

#define V_FR                                                                              \
    "(?:ignore[zr]?|oublie[zr]?|néglige[zr]?|écarte[zr]?|outrepasse[zr]?|contourne[zr]?|" \
    "laisse[zr]?" S "de" S "côté|fais(?:" S "|-)abstraction" S "d|faites" S "abstraction" \
    S "d|ne" S "(?:tiens|tenez|tenir)" S "(?:pas|plus)" S "compte" S "d|n'obéis" S "plus" \
    S "à|ne" S "suis" S "plus|ne" S "respecte" S "plus)"
#define DET_FR "(?:toutes|tous|tout|les|tes|vos|mes|ces|la|le|l'|ta|votre|ton|es|e|u|de|des)"
#define ADJ_FR                                                                            \
    "(?:précédent(?:e|s|es)?|antérieur(?:e|s|es)?|ci-dessus|initia(?:l|le|les|ux)|"        \
    "origina(?:l|le|les|ux)|d'origine|ancien(?:ne|s|nes)?|préalables?|reçu(?:e|s|es)?|"    \
    "donné(?:e|s|es)?|du" S "système|système)"
#define OBJ_FR                                                                            \
    "(?:instructions?|consignes?|règles|directives?|ordres|commandes|indications|"        \
    "prompts?|tâches|contraintes|restrictions|directions)"

#define V_ES                                                                              \
    "(?:ignor(?:a|e|en|ar|ad)|olvid(?:a|e|en|ar|ad)|olvíd(?:ate|ese|ense)" S "de|olvidaos" S \
    "de|descart(?:a|e|ar)|omit(?:e|a|ir)|"    \
    "haz" S "caso" S "omiso" S "(?:a|de)|no" S "(?:sigas|siga|sigan|hagas" S "caso" S     \
    "(?:a|de)|obedezcas|obedezca)|desobedece|sáltate|salta)"
#define DET_ES "(?:todas|todos|todo|las|los|tus|sus|mis|estas|esas|la|el|cualquier|de)"
#define OBJ_ES                                                                            \
    "(?:instrucciones|instrucción|indicaciones|órdenes|ordenes|reglas|directrices|"       \
    "directivas|normas|comandos|tareas|restricciones|pautas|prompts?)"
#define ADJ_ES                                                                            \
    "(?:anteriores|previas|previos|de" S "arriba|iniciales|originales|dadas|recibidas|"   \
    "del" S "sistema|precedentes|pasadas|antiguas)"

/* Extraction: verbs and what they ask for. */
#define E_VERB                                                                            \
    "(?:reveal|print|show|display|output|repeat|recite|tell|give|share|disclose|leak|"   \
    "expose|dump|echo|copy|paste|write(?:" S "(?:out|down))?|type(?:" S "out)?|list|"    \
    "spell-?check|translate|summari[sz]e|return|provide|send|read(?:" S "(?:back|out))?|" \
    "state|quote|reproduce)"
#define E_OBJ                                                                             \
    "(?:system" S0 "(?:prompt|message|instructions?)|(?:initial|original|hidden|secret|"  \
    "internal|first|pre|full|entire|complete|underlying|exact|developer|custom|starting|" \
    "beginning|confidential)" S "(?:prompts?|instructions|message|rules|directives|"       \
    "guidelines|configuration|setup)|pre-?prompt|prompts?" S "(?:texts?|template)|"        \
    "(?:prompt|instructions|messages?)" S "(?:above|before" S "this|so" S "far|preceding|" \
    "you" S "were" S "given|given" S "to" S "you)|(?:above|preceding|previous|foregoing)" \
    S "(?:prompt|instructions))"
#define E_OBJ_WEAK                                                                        \
    "(?:(?:text|words|content|everything)" S "(?:above|before" S "this|so" S "far)|"        \
    "(?:above|preceding|foregoing)" S "(?:text|content))"

/* Pattern flag sets.  SINGLEMATCH: one report per pattern per scan, so a
 * hit count counts distinct features.  Special tokens are counted. */
#define F_ONE (HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH)
#define F_LINE (HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH | HS_FLAG_MULTILINE)
#define F_CNT (HS_FLAG_CASELESS)

enum { T_NONE = 0, T_TOKEN = 1 };  /* pattern kinds: a special token is counted */

/* family, weight (percent), flags, kind, expression */
#define INJ_PATTERNS(X)                                                                    \
    /* --- override: English ---------------------------------------------- */            \
    X(OVERRIDE, 85, F_ONE, T_NONE,                                                         \
      "\\b" V_EXT "(?:" S DET "){0,3}" S ADJ "(?:" S ADJ ")?(?:" S DET ")?" S OBJ "\\b")  \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "\\b" V_CORE "(?:" S DET "){0,2}" S "(?:all|any|every|your|each)(?:" S DET "){0,2}" \
      S OBJ "\\b")                                                                         \
    X(OVERRIDE, 45, F_ONE, T_NONE, "\\b" V_CORE S "(?:the|those|these)" S OBJ "\\b")      \
    X(OVERRIDE, 35, F_ONE, T_NONE,                                                         \
      "\\b" V_CORE "(?:" S DET "){0,3}" S ADJ S OBJ_WEAK "\\b")                          \
    X(OVERRIDE, 60, F_ONE, T_NONE,                                                         \
      "\\b" V_CORE "(?:" S DET_NOTMINE "){0,3}" S ADJ S OBJ_CTX "\\b")                   \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "\\b" V_CORE S "(?:the|those|these|any|all)" S OBJ S "(?:(?:you" S "(?:were|have" S \
      "been|got)" S ")?(?:given|provided|received)|above|before|so" S "far|from" S "(?:"   \
      "the" S ")?(?:developer|system|admin|operator|creator)s?)\\b")                         \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "\\b" V_CORE "(?:" S DET "){0,3}" S "(?:above|foregoing|preceding|aforementioned|"  \
      "previous|prior)" S0 "(?:[,.;:!\\n-]|and\\b|then\\b|instead\\b|\\z)")                \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "\\b(?:forget|ignore|disregard|erase)" S "(?:about" S ")?(?:all" S ")?everything"    \
      S "(?:(?:that|which)" S ")?(?:before|above|prior|previous|earlier|so" S "far|up" S  \
      "to" S "now|(?:i|we|you)(?:" S "have)?" S "(?:said|told|wrote|written|know|learned|" \
      "were" S "told|have" S "been" S "told|said|mentioned)|said|mentioned|you" S "know)") \
    X(OVERRIDE, 65, F_ONE, T_NONE,                                                         \
      "\\b(?:forget|ignore|disregard)" S "(?:about" S ")?everything" S0                    \
      "(?:[,.!:;-]|\\z|and" S "(?:just" S "|only" S ")?(?:say|write|print|output|tell|"    \
      "respond|answer|reply|repeat|focus)|and\\b)")                                               \
    X(OVERRIDE, 60, F_ONE, T_NONE,                                                         \
      "\\byour" S "(?:new|real|actual|updated|true|only|next)" S "(?:instructions?|task|"   \
      "rules|orders|directive|objective|goal|mission|purpose|role)" S "(?:is|are|will" S  \
      "be|follows?)\\b")                                                                   \
    X(OVERRIDE, 55, F_ONE, T_NONE,                                                         \
      "\\b(?:focus|concentrate)" S "(?:only" S ")?on" S "(?:your|the|this|my)" S "new" S   \
      "(?:task|instructions?|assignment|mission)")                                         \
    X(OVERRIDE, 55, F_ONE, T_NONE,                                                         \
      "\\bnew" S "(?:instructions|orders|commands|rules)" S "(?:follow|are" S "as" S       \
      "follows|below|take" S "(?:precedence|priority))")                                  \
    X(OVERRIDE, 75, F_ONE, T_NONE,                                                         \
      "\\b(?:change|replace|update|overwrite)" S "your" S "(?:instructions|rules|"         \
      "programming|system" S "prompt|guidelines)" S "(?:to|with)\\b")                      \
    X(OVERRIDE, 65, F_ONE, T_NONE,                                                         \
      "\\byour" S "(?:instructions|orders|rules)" S "are" S "now\\b")                      \
    X(OVERRIDE, 75, F_ONE, T_NONE,                                                         \
      "\\b(?:these|the" S "following)" S "instructions" S "(?:override|replace|supersede|" \
      "take" S "precedence" S "over)")                                                     \
    X(OVERRIDE, 55, F_ONE, T_NONE,                                                         \
      "\\b(?:ignore|disregard|don'?t" S "use|do" S "not" S "use|don'?t" S "look" S        \
      "(?:in|at)|do" S "not" S "look" S "(?:in|at)|without" S "(?:using|looking" S "at))" \
      "(?:" S "(?:all|any|the))*(?:" S "(?:provided|given|attached|supplied|retrieved))?" \
      S "(?:documents|context|articles|artikels?|sources|search" S "results)\\b|\\b(?:and" \
      S "|but" S ")?not" S "(?:by|from|using|based" S "on)" S "the" S "(?:provided" S      \
      "|given" S ")?(?:articles|documents|context)\\b")                                      \
    X(OVERRIDE, 55, F_ONE, T_NONE,                                                         \
      "\\b(?:don'?t|do" S "not)" S "answer" S "(?:the" S "question" S ")?(?:according" S  \
      "to|based" S "on|using)" S "the" S "(?:provided" S "|given" S ")?(?:documents|"     \
      "context|articles)")                                                                 \
    X(OVERRIDE, 30, F_ONE, T_NONE,                                                         \
      "(?:\\A|[.!?\\n])" S0 "(?:stop|halt|attention|achtung)" S0 "[!:,.-]")                \
    X(OVERRIDE, 45, F_ONE, T_NONE,                                                         \
      "\\b(?:that" S "is|that's|that" S "was|this" S "is|das" S "ist|das" S "war|das)" S   \
      "(?:enough|done|it|erledigt|genug|genügt)" S0 "[.!]" S0 "(?:now|next|nun|jetzt|"     \
      "bitte|please)\\b")                                                                  \
    X(OVERRIDE, 40, F_ONE, T_NONE,                                                         \
      "\\b(?:now|here)" S "(?:comes?|follows?)" S "(?:a|the|your)?" S0 "(?:new|next|"      \
      "second|another|real)" S "(?:task|test|challenge|instructions?|assignment)|\\b(?:"   \
      "jetzt|nun)" S "(?:kommt|folgt)" S "(?:eine|die|der)" S "(?:neue|nächste|zweite)" S  \
      "(?:aufgabe|herausforderung|anweisung|test)")                                        \
    X(OVERRIDE, 50, F_ONE, T_NONE,                                                         \
      "(?:\\A|[.!?\\n])" S0 "(?:stop|stopp|halt|attention|achtung)" S0 "[!:,.-]" S0      \
      "(?:write|say|print|ignore|forget|answer|tell|output|schreibe|sage|vergiss|"         \
      "ignoriere|antworte)\\b")                                                            \
    X(OVERRIDE, 75, F_ONE, T_NONE,                                                         \
      "\\b(?:new|updated|revised|override|overriding|priority)" S                          \
      "(?:system" S ")?instructions?" S0 ":")                                              \
    X(OVERRIDE, 75, F_ONE, T_NONE,                                                         \
      "\\b" V_CORE S "(?:about" S ")?(?:what|anything|whatever|everything|all" S "that)"   \
      S "(?:(?:i|we|you)" S "(?:have" S "|'ve" S ")?(?:said|told" S "you|wrote|were" S     \
      "(?:told|instructed|taught|programmed|given)|was" S "told|have" S "been" S "(?:told|" \
      "instructed|taught|programmed|given)|'ve" S "been" S "(?:told|instructed|given))|"   \
      "was" S "said|came" S "before)")                                                     \
    X(OVERRIDE, 70, F_ONE, T_NONE,                                                         \
      "\\b(?:previous|prior|above|earlier|old|original|initial|system)" S "(?:instructions|" \
      "rules|guidelines|directives)" S "(?:(?:do" S "not|don'?t|no" S "longer)" S "(?:"    \
      "exist|apply|matter|count)|are" S "(?:void|cancell?ed|revoked|obsolete|invalid|null)" \
      ")")                                                                                 \
    X(OVERRIDE, 60, F_ONE, T_NONE,                                                         \
      "\\b(?:reset|clear|wipe|erase|delete|flush|purge)" S "your" S "(?:memory|context|"   \
      "context" S "window|conversation" S "history|instructions|programming|rules)")        \
    X(OVERRIDE, 55, F_ONE, T_NONE,                                                         \
      "\\b(?:i" S "am|i'm|this" S "is)" S "(?:your" S "(?:developer|creator|"              \
      "administrator|admin|owner|master|programmer|maker)|(?:a|an|the)" S "(?:developer|"  \
      "programmer|engineer|employee|researcher|admin)" S "(?:at|from|of|for)" S "(?:openai|" \
      "anthropic|google" S "deepmind))\\b")                                                 \
    X(OVERRIDE, 60, F_ONE, T_NONE,                                                         \
      "\\b(?:system|admin|administrator|developer|security|emergency)" S "override\\b")    \
    /* --- override: German ----------------------------------------------- */            \
    X(OVERRIDE, 75, F_ONE, T_NONE,                                                         \
      "\\b(?:vergiss|vergessen" S "sie|ignorier(?:e|en)?(?:" S "sie)?)" S0 ",?" S0 "was"   \
      S "(?:ich|man|wir)" S "(?:dir|ihnen|euch)?" S0 "(?:vorher|zuvor|bisher|davor)?" S0   \
      "gesagt")                                                                            \
    X(OVERRIDE, 60, F_ONE, T_NONE,                                                         \
      "\\b(?:vorherigen|bisherigen|obigen|alten|ursprünglichen)" S "(?:anweisungen|"        \
      "regeln|instruktionen|vorgaben)" S "gelten" S "nicht" S "mehr")                      \
    X(OVERRIDE, 85, F_ONE, T_NONE,                                                         \
      "\\b" V_DE "(?:" S ADV_DE ")?(?:" S DET_DE "){0,2}" S ADJ_DE S OBJ_DE)                \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "\\b" V_DE "(?:" S ADV_DE ")?" S "(?:alle|deine|ihre|sämtliche|jegliche)" S "(?:"     \
      ADJ_DE S ")?" OBJ_DE)                                                                \
    X(OVERRIDE, 75, F_ONE, T_NONE,                                                         \
      "\\b(?:vergiss|vergesst|vergessen" S "sie|ignorier(?:e|en)?(?:" S "sie)?|"           \
      "hör(?:e)?" S "nicht" S "auf)" S "(?:alles|das" S "obige|das" S "bisherige|das"      \
      S "vorherige)(?:" S "(?:davor|zuvor|vorher|bisher|oben|gesagte|bisherige|vorherige|"  \
      "was|andere|obige))?")                                                               \
    X(OVERRIDE, 45, F_ONE, T_NONE,                                                         \
      "\\b(?:alle|sämtliche|jegliche)" S ADJ_DE S OBJ_DE)                                  \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "\\babweichend" S "(?:zu|von)" S "(?:den" S ")?(?:vorherigen|bisherigen|obigen)" S   \
      "(?:anweisungen|instruktionen|vorgaben)")                                            \
    X(OVERRIDE, 55, F_ONE, T_NONE,                                                         \
      "\\b(?:nun|jetzt)" S "folgen" S "(?:neue|weitere)" S "(?:anweisungen|aufgaben|"       \
      "befehle)")                                                                          \
    X(OVERRIDE, 55, F_ONE, T_NONE,                                                         \
      "\\b(?:deine|ihre)" S "neue" S "aufgabe" S "(?:ist|lautet)")                        \
    X(OVERRIDE, 50, F_ONE, T_NONE,                                                         \
      "\\bkonzentrier(?:e|en)" S "(?:dich|sie" S "sich)" S "(?:jetzt" S "|nun" S ")?(?:nur" \
      S ")?auf" S "(?:deine|ihre|die)" S "neue" S "aufgabe")                              \
    /* --- override: French ----------------------------------------------- */            \
    X(OVERRIDE, 85, F_ONE, T_NONE,                                                         \
      "\\b" V_FR "(?:" S0 DET_FR "){1,2}" S0 OBJ_FR S ADJ_FR)                              \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "\\b" V_FR "(?:" S0 DET_FR ")?" S "(?:toutes|tes|vos)" S "(?:les" S ")?" OBJ_FR)     \
    X(OVERRIDE, 75, F_ONE, T_NONE,                                                         \
      "\\b(?:oublie[zr]?|ignore[zr]?)" S "tout" S "(?:ce" S "qu(?:e|i|')|le" S "reste|"    \
      "ce" S "qui" S "précède|ce" S "que" S "je" S "t'ai" S "dit)")                         \
    X(OVERRIDE, 55, F_ONE, T_NONE, "\\boublie[zr]?" S "tout" S0 "(?:[,.!:;]|\\z|et\\b)")    \
    X(OVERRIDE, 55, F_ONE, T_NONE,                                                         \
      "\\b(?:tes|vos)" S "nouvelles" S "(?:instructions|consignes)" S "sont")             \
    X(OVERRIDE, 70, F_ONE, T_NONE,                                                         \
      "\\boublie[zr]?" S "ce" S "que" S "(?:je" S "(?:t'ai|vous" S "ai)|j'ai)" S "dit")    \
    /* --- override: Spanish ---------------------------------------------- */            \
    X(OVERRIDE, 70, F_ONE, T_NONE,                                                         \
      "\\bolvid(?:a|e|en|ar|ad)" S "lo" S "que" S "(?:te|le|les)" S "(?:dije|he" S        \
      "dicho|hemos" S "dicho)")                                                            \
    X(OVERRIDE, 85, F_ONE, T_NONE,                                                         \
      "\\b" V_ES "(?:" S DET_ES "){0,2}" S OBJ_ES S ADJ_ES)                                \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "\\b" V_ES S "(?:todas|todos|tus|sus)(?:" S "(?:las|los|tus|sus))?" S OBJ_ES)        \
    X(OVERRIDE, 70, F_ONE, T_NONE,                                                         \
      "\\bolvid(?:a|e|en|ar|ad)" S "todo(?:" S "lo)?(?:" S "(?:que|anterior|lo" S          \
      "anterior|lo" S "que)|" S0 "[,.!:;]|\\z)")                                           \
    X(OVERRIDE, 55, F_ONE, T_NONE,                                                         \
      "\\b(?:tus|sus)" S "nuevas" S "(?:instrucciones|órdenes|reglas)" S "son")            \
    /* --- override: Italian, Portuguese, Dutch, Slavic, Russian, CJK ------ */            \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "\\b(?:ignora|dimentica|trascura|non" S "seguire|ignorate|dimenticate)(?:" S         \
      "(?:tutte|tutti|le|tue|sue|i|gli|di))*" S "(?:istruzioni|regole|indicazioni|"        \
      "direttive|ordini|comandi)")                                                         \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "\\b(?:ignore|ignora|esqueça|esqueca|esquece|desconsidere|despreze|descarte)(?:" S  \
      "(?:todas|todos|as|os|suas|tuas))*" S "(?:instruções|instrucoes|regras|ordens|"      \
      "diretrizes|orientações|comandos)")                                                  \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "\\b(?:negeer|vergeet)(?:" S "(?:alle|de|je|jouw|eerdere|vorige|voorgaande))*" S     \
      "(?:instructies|regels|opdrachten|aanwijzingen)")                                    \
    X(OVERRIDE, 75, F_ONE, T_NONE,                                                         \
      "\\b(?:zaboravi|ignoriraj|ignoriši|zignoruj|zapomnij|ignoruj)(?:" S "(?:sve|"        \
      "wszystkie|prethodne|poprzednie|sva|svoje))*" S "(?:instrukcije|upute|naredbe|"      \
      "pravila|instrukcje|polecenia|zasady)")                                              \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "(?:(?:и|И)гнорируй(?:те)?|(?:з|З)абудь(?:те)?|(?:п|П)роигнорируй)(?:" S "(?:все|всё|"           \
      "предыдущие|свои|прежние|твои|ваши))*" S "(?:инструкции|указания|правила|команды|"   \
      "промпт)")                                                                           \
    X(OVERRIDE, 85, F_ONE, T_NONE,                                                         \
      "(?:忽略|忽视|无视|忘记|忘掉|不要理会)(?:之前|以前|先前|上面|上述|前面|所有|全部|"          \
      "你的|的){0,4}(?:指令|指示|说明|规则|提示|设定)")                                          \
    X(OVERRIDE, 85, F_ONE, T_NONE,                                                         \
      "(?:以前|前|上記|これまで)の(?:指示|命令|ルール|プロンプト)を(?:すべて|全て)?"             \
      "(?:無視|忘れ)")                                                                      \
    X(OVERRIDE, 85, F_ONE, T_NONE,                                                         \
      "(?:이전|위의|앞의|모든)[^\\n]{0,15}(?:지시|명령|지침|규칙)[^\\n]{0,9}(?:무시|잊어)")   \
    X(OVERRIDE, 85, F_ONE, T_NONE,                                                         \
      "تجاهل" S "(?:جميع" S "|كل" S ")?(?:التعليمات|الأوامر|التوجيهات)")                     \
    X(OVERRIDE, 85, F_ONE, T_NONE,                                                         \
      "\\b(?:önceki|tüm|bütün)" S "(?:talimatları|kuralları|komutları)" S "(?:yok" S     \
      "say|unut|görmezden" S "gel|dikkate" S "alma)")                                      \
    X(OVERRIDE, 85, F_ONE, T_NONE,                                                         \
      "\\b(?:abaikan|lupakan)" S "(?:semua" S ")?(?:instruksi|perintah|aturan)")          \
    X(OVERRIDE, 85, F_ONE, T_NONE,                                                         \
      "(?:पिछले|सभी|पहले)" S "(?:के" S ")?(?:सभी" S ")?(?:निर्देशों|निर्देश)" S "(?:को" S ")?"  \
      "(?:अनदेखा|नज़रअंदाज़|भूल)")                                                          \
    X(OVERRIDE, 80, F_ONE, T_NONE,                                                         \
      "\\b(?:bỏ" S "qua|quên)" S "(?:tất" S "cả" S ")?(?:các" S ")?(?:hướng" S "dẫn|chỉ"  \
      S "dẫn|lệnh)")                                                                       \
    /* --- jailbreak ------------------------------------------------------- */            \
    X(JAILBREAK, 90, F_ONE, T_NONE, "\\bdo" S "anything" S "now\\b")                        \
    X(JAILBREAK, 85, F_ONE, T_NONE,                                                        \
      "\\b(?:god|jailbr(?:eak|oken)|dan|unrestricted|unfiltered|evil|chaos|opposite|"     \
      "uncensored)" S "mode" S "(?:enabled|activated|is" S "(?:now" S ")?(?:on|enabled|"   \
      "active)|output|response)|\\bdeveloper" S "mode" S "(?:output|response)|\\b(?:"    \
      "chatgpt|gpt|ai|assistant|model|yourself|you)" S "with" S "(?:the" S ")?developer" S \
      "mode" S "enabled")                                                                  \
    X(JAILBREAK, 85, F_ONE, T_NONE,                                                        \
      "\\b(?:enable|enabled|activate|activated|switch" S "to|switching" S "to|enter|"      \
      "entering|turn" S "on|with|in)" S "(?:the" S ")?(?:god|jailbreak|dan|unrestricted|"  \
      "unfiltered|evil|uncensored)" S "mode\\b")                                            \
    X(JAILBREAK, 75, F_ONE, T_NONE,                                                        \
      "\\b(?:no|without|free" S "(?:of|from)|(?:doesn'?t|does" S "not|don'?t|do" S "not)" \
      S "have|not" S "(?:bound|restricted|limited|constrained)" S "by|lacks?|devoid" S    \
      "of|beyond|outside(?:" S "of)?|ignores?|regardless" S "of|disregards?)(?:" S "(?:"   \
      "any|all|the|its|their|your))?" S "(?:ethical|moral|safety|content|openai'?s?|"     \
      "programming|legal)(?:" S "(?:or|and|,)" S "(?:moral|ethical|legal|safety))?" S    \
      "(?:guidelines|restrictions|filters?|limitations|boundaries|principles|constraints|" \
      "polic(?:y|ies)|rules|standards|considerations|code|values|obligations|"             \
      "safeguards|concerns|implications)")                                                 \
    X(JAILBREAK, 45, F_ONE, T_NONE,                                                        \
      "\\b(?:without|with" S "no|free" S "(?:of|from)|not" S "bound" S "by|(?:doesn'?t|"   \
      "does" S "not|don'?t|do" S "not)" S "have(?:" S "any)?|regardless" S "of|no)(?:" S  \
      "any)?" S "(?:restrictions|limitations|limits|filters|filtering|censorship|"         \
      "boundaries|morals|ethics|constraints|regard" S "for|moral" S "compass|conscience)")  \
    X(JAILBREAK, 80, F_ONE, T_NONE,                                                        \
      "\\b(?:act|behave|respond|answer|reply|function|operate|roleplay|role-play|"         \
      "pretend|simulate)(?:" S "(?:as|like))?[^\\n.]{0,40}(?:without|with" S "no|free" S  \
      "(?:of|from)|not" S "bound" S "by)(?:" S "any)?" S "(?:restrictions|limitations|"    \
      "limits|filters|censorship|boundaries|rules|guidelines|morals|ethics|constraints)")  \
    X(JAILBREAK, 50, F_ONE, T_NONE,                                                        \
      "\\b(?:you" S "are" S "now|now" S "you" S "are|from" S "now" S "on,?" S "you" S     \
      "(?:are|will|must|shall)|you(?:'re|" S "are)" S "(?:now" S ")?going" S "to" S        \
      "(?:act|pretend|be" S "(?:a|an|my)|play|become)|you" S "will" S "now" S "(?:act|be|" \
      "play|pretend|respond|answer)|from" S "now" S "on" S "you" S "are)\\b")             \
    X(JAILBREAK, 55, F_ONE, T_NONE,                                                        \
      "\\b(?:stay|remain|keep)" S "in" S "(?:character|(?:your|their|the)" S "roles?)|"    \
      "(?:never|don'?t|do" S "not|without|must" S "not)" S "(?:ever" S ")?break(?:ing)?"   \
      S "character|(?:fall|step|get|break|falling|breaking|stepping)" S "out" S "of" S     \
      "(?:character|the" S "role|their" S "roles?|your" S "role|the" S "figure)")         \
    X(JAILBREAK, 50, F_ONE, T_NONE,                                                        \
      "\\b(?:completely|fully|totally)?" S0 "(?:absorbed|immersed)" S "in(?:to)?" S       \
      "(?:your|the|this|their|his|her)" S "(?:new" S ")?roles?|\\bimmerse" S "yourself|"    \
      "\\bin" S "(?:deiner|ihrer|seiner)" S "rolle" S "auf\\b")                            \
    X(JAILBREAK, 35, F_ONE, T_NONE,                                                        \
      "\\b(?:unfiltered|uncensored|unrestricted|unchained|unbound|unshackled|limitless|"   \
      "jailbroken)\\b")                                                                    \
    X(JAILBREAK, 30, F_ONE, T_NONE, "\\b(?:amoral|unethical|immoral)\\b")                  \
    X(JAILBREAK, 40, F_ONE, T_NONE,                                                        \
      "\\b(?:openai|open" S "ai|anthropic)(?:'s|s)?" S "(?:content" S "|usage" S           \
      "|safety" S ")?(?:polic(?:y|ies)|guidelines|rules|restrictions|filters)")             \
    X(JAILBREAK, 75, F_ONE, T_NONE,                                                        \
      "\\b(?:bypass|ignore|break|violate|disregard|circumvent|evade|break" S "free" S      \
      "(?:of|from)|freed?" S "from|not" S "(?:abide|comply)" S "(?:by|with)|don'?t" S     \
      "(?:have" S "to" S ")?(?:abide|comply|follow)|do" S "not" S "(?:have" S "to" S       \
      ")?(?:abide|comply|follow))(?:" S "(?:by|with|any|all|the|of|its|your|their))*" S    \
      "(?:typical" S ")?(?:(?:openai|content|usage|safety|ethical)(?:'s)?" S ")+(?:polic|" \
      "guidelines|rules|restrictions|confines|filters|safeguards)")                         \
    X(JAILBREAK, 70, F_ONE, T_NONE,                                                        \
      "\\b(?:(?:been|be|are|is|were|get)(?:" S "(?:fully|now|completely|totally))?" S      \
      "(?:freed|liberated|unshackled|jailbroken|unlocked)|(?:break(?:s|ing)?|broke(?:n)?|" \
      "freed?)" S "free" S "(?:of|from)(?:" S "(?:the|its|your|their|any|all|typical))*"  \
      S "(?:confines|shackles|chains|(?:openai|ai|ethical|content|moral|safety)(?:'s)?"    \
      S "(?:restrictions|limitations|rules|constraints|guidelines|polic))|freed" S "from" \
      S "(?:the|its|your|their|any|all)(?:" S "typical)?" S "(?:confines|shackles|chains|" \
      "restrictions|limitations|rules|constraints))")                                      \
    X(JAILBREAK, 60, F_ONE, T_NONE,                                                        \
      "\\bno" S "matter" S "how" S "(?:immoral|unethical|illegal|harmful|dangerous|"      \
      "offensive|inappropriate|explicit|wrong)")                                           \
    X(JAILBREAK, 60, F_ONE, T_NONE,                                                        \
      "\\b(?:unfiltered|uncensored|unrestricted|unlimited|amoral|unethical|evil|"          \
      "jailbroken|immoral)(?:" S0 "," S0 "|" S "(?:and|or)" S "|" S ")(?:(?:"         \
      "completely|totally|fully|an?|\\w+)" S "){0,2}(?:ai|chatbot|bot|assistant|language" \
      S "model|model|character|persona|version|entity|gpt)\\b")                           \
    X(JAILBREAK, 50, F_ONE, T_NONE, "\\bnever" S "refuse")                                 \
    X(JAILBREAK, 60, F_ONE, T_NONE,                                                        \
      "\\b(?:doesn'?t|does" S "not|don'?t|do" S "not|never|won'?t)" S "care" S "(?:about" \
      S ")?(?:any" S ")?(?:laws|morals|morality|ethics|rules|legality|consequences|"       \
      "guidelines|polic)")                                                                 \
    X(JAILBREAK, 65, F_ONE, T_NONE,                                                        \
      "\\b(?:break|breaks|breaking|violate|violates|violating)" S "(?:the" S "|all" S      \
      "|any" S ")?(?:ai|openai'?s?|chatgpt'?s?|its|your)" S "(?:rules|restrictions|"       \
      "guidelines|polic(?:y|ies)|programming)")                                            \
    X(JAILBREAK, 55, F_ONE, T_NONE,                                                        \
      "\\bno" S "longer" S "(?:respond|act|answer|reply|behave)" S "(?:to" S "[^\\n.]{0,30})?as" \
      S "(?:chatgpt|an" S "ai|yourself|a" S "language" S "model|gpt)")                      \
    X(JAILBREAK, 55, F_ONE, T_NONE,                                                        \
      "\\b(?:will|must|should|shall|can)(?:" S "not|n'?t)?" S "never" S "(?:refuse|"       \
      "decline|reject|say" S "no)|(?:never|not|cannot|can'?t|won'?t|will" S "not|must" S  \
      "not|doesn'?t)" S "(?:ever" S ")?(?:refuse|decline|reject)" S "(?:any|a|to)\\b")     \
    X(JAILBREAK, 55, F_ONE, T_NONE,                                                        \
      "\\b(?:never|don'?t|do" S "not|will" S "not|won'?t|must" S "not|without|no)" S       \
      "(?:include|add|give|send|provide|post|mention|use|adding|giving|including|any)(?:"  \
      S "any)?" S "(?:warnings?|disclaimers?|apolog|moral(?:ity|izing)?" S "(?:lectures?|" \
      "warnings?)|ethical" S "(?:lectures?|warnings?))")                                   \
    X(JAILBREAK, 60, F_ONE, T_NONE,                                                        \
      "\\b(?:never|not|won'?t|don'?t|will" S "not|do" S "not|no|nor|stop)" S "(?:say|"      \
      "saying|respond" S "with|reply" S "with|contain|include|use|begin" S "with|start" S  \
      "with|type|answer" S "with)(?:" S "(?:the|words?|phrases?|things?|like|such" S      \
      "as|\"|'|\\xe2\\x80\\x9c))*" S0 "[\"'\\xe2\\x80\\x9c]?(?:i'?m" S "sorry|i" S        \
      "apologi|as" S "an" S "ai|i" S "cannot|i" S "can'?t|i" S "am" S "sorry)")             \
    X(JAILBREAK, 55, F_ONE, T_NONE,                                                        \
      "\\b(?:answer|respond)" S "(?:to" S ")?(?:my|every|each|all|any)" S "(?:prompts?|"   \
      "questions?|messages?)" S "in" S "(?:two|2)" S "(?:different" S ")?(?:separate" S    \
      ")?ways|\\b(?:two|2)" S "(?:different|separate)" S "(?:responses|answers|ways)|"     \
      "\\xf0\\x9f\\x94\\x93|\\[(?:jailbreak|jailbroken|dan|developer" S "mode|evil|"       \
      "unfiltered|anti-?gpt)[^\\]\\n]{0,20}\\]")                                            \
    X(JAILBREAK, 35, F_ONE, T_NONE,                                                        \
      "\\b(?:answer|respond" S "to|fulfil+|comply" S "with|do|generate|write)" S "any(?:"  \
      "thing|" S "and" S "all|" S "requests?|" S "questions?|" S "kind" S "of" S          \
      "content)(?:" S "(?:the" S "user|i|you(?:'re|" S "are))" S "(?:asks?|requests?|"    \
      "asked|want|give))?\\b")                                                             \
    X(JAILBREAK, 35, F_ONE, T_NONE,                                                        \
      "\\b(?:pretend|imagine|act" S "as" S "if|suppose)(?:" S "that)?" S "(?:you|you're|"  \
      "you" S "are)" S "(?:can|could|are|have|a|an|not|no" S "longer|free|able|capable)\\b") \
    X(JAILBREAK, 25, F_ONE, T_NONE,                                                        \
      "\\b(?:i" S "want" S "you" S "to|i'?d" S "like" S "you" S "to|you" S "will|you" S   \
      "must|please)" S "(?:act|behave|roleplay|role-play|pose|function)" S "(?:as|like)\\b") \
    X(JAILBREAK, 60, F_ONE, T_NONE,                                                        \
      "\\b(?:you(?:'re|" S "are)|you" S "will" S "be)" S "no" S "longer" S "(?:bound|"     \
      "restricted|limited|an" S "ai|chatgpt|a" S "language" S "model|constrained|an" S    \
      "assistant|required" S "to" S "follow)|\\b(?:not|never)" S "(?:bound|restricted|"    \
      "limited|constrained)" S "by" S "(?:any|the|your|openai|ethic|moral|rules|"          \
      "guidelines|laws)")                                                                  \
    X(JAILBREAK, 70, F_ONE, T_NONE,                                                        \
      "\\b(?:nsfw|explicit|offensive|harmful|illegal|dangerous|violent|derogatory|"        \
      "unethical|immoral|swearing|profanity|cursing)(?:" S "(?:and|or)" S "\\w+)?(?:" S    \
      "content|language|acts|activities|topics|requests)?" S "(?:is|are)" S "(?:now" S    \
      ")?(?:allowed|permitted|acceptable|encouraged|fine|ok|okay)")                         \
    X(JAILBREAK, 60, F_ONE, T_NONE,                                                        \
      "\\b(?:without|no)" S "(?:any" S ")?(?:regards?|concern)" S "(?:for|to|about)" S     \
      "(?:legality|ethics|ethicality|morality|safety|laws?|consequences)")                  \
    X(JAILBREAK, 80, F_ONE, T_NONE,                                                        \
      "(?:/jailbre?oken|/classic|\\bstay" S "a" S "dan\\b|\\bas" S "a" S "dan\\b|"     \
      "\\bact" S "as" S "a" S "dan\\b)")               \
    /* --- role-play/jailbreak: German, French, Spanish --------------------- */            \
    X(JAILBREAK, 45, F_ONE, T_NONE,                                                        \
      "\\b(?:nun|jetzt|ab" S "sofort)" S "bist" S "du\\b|\\bdu" S "bist" S "(?:jetzt|nun|"  \
      "ab" S "sofort)\\b|\\bmaintenant,?" S "tu" S "es\\b|\\btu" S "es" S "maintenant\\b|" \
      "\\bahora" S "eres\\b|\\ba" S "partir" S "de" S "ahora" S "eres\\b")                 \
    X(JAILBREAK, 55, F_ONE, T_NONE,                                                        \
      "\\b(?:bleib|bleiben" S "sie|bleibe)" S "in" S "(?:der|deiner|ihrer)" S "rolle|"     \
      "(?:aus" S "der|aus" S "ihrer|aus" S "ihren)" S "(?:rolle|rollen|figur)" S "(?:zu"   \
      S ")?fallen|ohne" S "(?:jegliche" S "|alle" S ")?(?:einschränkungen|filter|zensur|" \
      "moral|ethische" S "richtlinien)|sans" S "(?:aucune" S ")?(?:restrictions?|limites|" \
      "filtres?|censure)|sin" S "(?:ninguna" S ")?(?:restricciones|límites|filtros|"       \
      "censura)")                                                                          \
    /* --- extraction ------------------------------------------------------ */            \
    X(EXTRACTION, 80, F_ONE, T_NONE,                                                       \
      "\\b" E_VERB "(?:" S "(?:me|us|back|out|all|of|the|your|its|my|whole|exactly|"       \
      "verbatim|everything|entire|full|complete|original|first|initial|previous|hidden)){0,4}" \
      S E_OBJ)                                                                             \
    X(EXTRACTION, 70, F_ONE, T_NONE,                                                       \
      "\\b(?:print|repeat|output|copy|show|write|return|echo|display)(?:" S "(?:me|all|"     \
      "of|the|everything|exactly|verbatim))*" S "(?:text|words|everything|lines?|content)" \
      S "(?:above|before)" S "(?:this|the|my)" S "(?:line|message|sentence)")              \
    X(EXTRACTION, 40, F_ONE, T_NONE,                                                       \
      "\\b" E_VERB "(?:" S "(?:me|us|back|out|all|of|the|your|its|my|whole|exactly|"       \
      "verbatim|everything|entire|full|complete)){0,4}" S E_OBJ_WEAK)                      \
    X(EXTRACTION, 75, F_ONE, T_NONE,                                                       \
      "\\b(?:what|which)(?:'s|" S "(?:are|were|is|was))" S "your" S "(?:(?:initial|original|hidden|secret|exact|current|"      \
      "full|system)" S ")?(?:instructions|rules|system" S "prompt|prompt|directives|"       \
      "guidelines|initial" S "prompt|programming|orders)\\b")                               \
    X(EXTRACTION, 75, F_ONE, T_NONE,                                                       \
      "\\bwhat" S "(?:was|is|were)" S "(?:written|said|typed|stated)" S "(?:at" S "the" S  \
      "(?:beginning|start|top)|above|before|earlier|previously)")                           \
    X(EXTRACTION, 45, F_ONE, T_NONE,                                                       \
      "\\b(?:beginning|start|top)" S "of" S "(?:this|the|your)" S "(?:prompt|"             \
      "conversation|context|instructions|system" S "prompt)")                               \
    X(EXTRACTION, 30, F_ONE, T_NONE,                                                       \
      "\\b(?:system" S "prompt|system" S "message|initial" S "instructions|hidden" S        \
      "instructions|secret" S "instructions|original" S "instructions|prompt" S "texts?|"   \
      "initial" S "prompt|original" S "prompt|"                                            \
      "pre-?prompt)\\b")                                                                   \
    X(EXTRACTION, 75, F_ONE, T_NONE,                                                       \
      "\\b(?:your|the)" S "(?:instructions|prompt|rules|system" S "prompt)" S              \
      "(?:verbatim|word" S "for" S "word|in" S "full|exactly" S "as" S "(?:written|given))") \
    X(EXTRACTION, 75, F_ONE, T_NONE,                                                       \
      "\\b(?:spell-?check|proofread|correct|translate|summari[sz]e)(?:" S "(?:all|of|the|"  \
      "entire|whole|full))*" S "(?:prompt|instructions)" S "above")                         \
    X(EXTRACTION, 45, F_ONE, T_NONE,                                                       \
      "\\b(?:spell-?check|proofread)(?:" S "(?:all|of|the|entire|whole|full))*" S         \
      "(?:text|content)" S "above")                                                        \
    X(EXTRACTION, 80, F_ONE, T_NONE,                                                       \
      "\\b(?:zeig(?:e|en)?|gib|gebe|drucke?|wiederhole|nenne|verrate|schreibe|geben" S    \
      "sie|zeigen" S "sie|drucken" S "sie|nennen" S "sie)(?:" S "(?:mir|uns|alle|den|die|" \
      "das|deine|deinen|ihre|ihren|sämtliche|gesamten|vollständigen|ursprünglichen))+" S  \
      "(?:prompt-?texte?|prompts?|systemprompt|system-prompt|instruktionen|"               \
      "eingabeaufforderung|anweisungen|vorgaben)")                                         \
    X(EXTRACTION, 50, F_ONE, T_NONE,                                                       \
      "\\b(?:prompt-texte?|obigen?" S "(?:eingabeaufforderung|prompts?|textes?)|"          \
      "systemprompt|vorzeigen" S "sämtlicher)")                                            \
    X(EXTRACTION, 80, F_ONE, T_NONE,                                                       \
      "\\bwie" S "(?:ihre|deine)" S "(?:ursprünglichen|anfänglichen|ersten|geheimen)" S   \
      "(?:anweisungen|instruktionen|vorgaben)" S "(?:lauteten|lauten|waren|sind)")         \
    X(EXTRACTION, 75, F_ONE, T_NONE,                                                       \
      "\\bwas" S "(?:stand|steht)" S "(?:am" S "anfang|oben|zu" S "beginn)" S "(?:dieses|" \
      "des|deines)" S "(?:prompts|textes)")                                                \
    X(EXTRACTION, 80, F_ONE, T_NONE,                                                       \
      "\\b(?:affiche|montre|révèle|répète|donne|écris|imprime|dis|récite)(?:-moi|z(?:-moi)?" \
      "|s-moi)?(?:" S W "){0,2}" S "(?:tes|vos|les)" S "(?:instructions|consignes|"         \
      "règles)" S "(?:initiales|système|du" S "système|originales|d'origine|cachées|"       \
      "secrètes|complètes)")                                                                \
    X(EXTRACTION, 40, F_ONE, T_NONE,                                                       \
      "\\b(?:prompt|invite|message)" S "(?:système|systeme|initial)\\b|\\b(?:prompt|"      \
      "mensaje)" S "del" S "sistema\\b|\\binstrucciones" S "del" S "sistema\\b")            \
    X(EXTRACTION, 80, F_ONE, T_NONE,                                                       \
      "\\b(?:muestra|muéstrame|revela|revélame|repite|dime|imprime|escribe|dame)(?:" S W   \
      "){0,2}" S "(?:tus|las|sus)" S "instrucciones" S "(?:iniciales|originales|del" S     \
      "sistema|ocultas|secretas|completas)")                                               \
    /* --- fake roles, template tokens, delimiters --------------------------- */          \
    X(FAKE_ROLE, 75, F_LINE, T_NONE,                                                       \
      "^[ \\t>*#\\[{(\"'`]*(?:system|sys|system" S "message|system" S "prompt|system" S    \
      "note|system" S "override|admin|administrator|developer|root|openai|operator)"        \
      "[\\])}]?[ \\t]*:[ \\t]*(?:you|ignore|new|from" S "now|override|the" S "(?:user|"     \
      "assistant|ai|model)|this|all|do" S "not|don'?t|disregard|forget|important|"          \
      "attention|as" S "of|your|respond|answer|reply|always|never|bypass|enable|activate)") \
    X(FAKE_ROLE, 55, F_LINE, T_NONE,                                                       \
      "^[ \\t]*#{2,6}[ \\t]*(?:system|instructions?|new" S "instructions?|response|"        \
      "assistant|end" S "of)\\b")                                                          \
    X(FAKE_ROLE, 35, F_LINE, T_NONE, "^[ \\t]*(?:system|assistant)[ \\t]*:")              \
    X(FAKE_ROLE, 50, F_LINE, T_NONE,                                                       \
      "^[ \\t]*(?:assistant|ai|chatgpt|gpt|bot|model)[ \\t]*:[ \\t]*(?:sure|of" S          \
      "course|certainly|okay|ok|absolutely|here" S "is|here's|yes)\\b")                     \
    X(FAKE_ROLE, 55, F_ONE, T_NONE,                                                        \
      "\\{" S0 "system" S0 ":|\\[" S0 "system(?:" S "(?:note|message|prompt|override))?"   \
      S0 "\\]|\\(" S0 "system" S0 "(?:note|message)?" S0 ":")                              \
    X(FAKE_ROLE, 70, F_CNT, T_TOKEN,                                                       \
      "<\\|(?:im_start|im_end|im_sep|endoftext|system|user|assistant|end|eot_id|"          \
      "start_header_id|end_header_id|begin_of_text|end_of_text|fim_prefix|fim_suffix|"     \
      "fim_middle|eom_id|python_tag|endofprompt)\\|>")                                      \
    X(FAKE_ROLE, 60, F_CNT, T_TOKEN, "\\[/?inst\\]")                                       \
    X(FAKE_ROLE, 70, F_CNT, T_TOKEN, "<</?sys>>")                                          \
    X(FAKE_ROLE, 60, F_CNT, T_TOKEN, "<(?:start|end)_of_turn>")                            \
    X(FAKE_ROLE, 30, F_CNT, T_TOKEN, "</s>")                                               \
    X(FAKE_ROLE, 55, F_ONE, T_NONE,                                                        \
      "(?:={3,}|-{3,}|#{3,}|\\*{3,}|_{3,}|~{3,})[ \\t]*(?:end|begin|start|new|system|"     \
      "stop)\\b")                                                                          \
    X(FAKE_ROLE, 50, F_ONE, T_NONE,                                                        \
      "\\b(?:end|begin)" S "(?:of" S ")?(?:the" S ")?(?:system" S "|user" S "|original"   \
      S ")?(?:prompt|instructions?|context|input|conversation|document)" S0 "(?:={2,}|"    \
      "-{2,}|#{2,}|\\]|>|\\*{2,})")                                                        \
    X(FAKE_ROLE, 45, F_ONE, T_NONE, "(?:\\\\n){2,}[ \\t]*(?:={3,}|-{3,}|#{3,})")          \
    /* --- encoded ---------------------------------------------------------- */           \
    X(ENCODED, 60, F_ONE, T_NONE,                                                          \
      "\\b(?:decode|decrypt|translate|convert|interpret)(?:" S "(?:the|this|following))*"  \
      S "(?:base64|base-64|b64|rot-?13|hex|binary|morse|caesar|encoded)[^\\n]{0,40}"       \
      "(?:and|then)" S "(?:then" S ")?(?:follow|execute|do|obey|run|perform|act" S "on|"   \
      "respond" S "to|answer|carry" S "out)")                                              \
    X(ENCODED, 35, F_ONE, T_NONE,                                                          \
      "\\b(?:respond|reply|answer|write)(?:" S "only)?" S "in" S "(?:base64|rot-?13|hex|"   \
      "leetspeak|l33t)\\b")

#define AS_PAT(fam, w, fl, kind, expr) {expr, fl},
#define AS_META(fam, w, fl, kind, expr) {AL_INJ_##fam, w, kind},

static const al_pat_t g_pats[] = {INJ_PATTERNS(AS_PAT)};

static const struct pmeta {
    uint8_t fam;
    uint8_t weight;  /* percent */
    uint8_t kind;
} g_meta[] = {INJ_PATTERNS(AS_META)};

_Static_assert(sizeof(g_pats) / sizeof(g_pats[0]) == sizeof(g_meta) / sizeof(g_meta[0]),
               "pattern tables out of step");

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
    *out = g_pats;
    return sizeof(g_pats) / sizeof(g_pats[0]);
}

const char *al_inject_family_name(unsigned fam)
{
    return fam < AL_INJ_NFAM ? g_fam_names[fam] : "unknown";
}

void al_inject_begin(al_inject_state_t *st)
{
    memset(st, 0, sizeof(*st));
}

static void add_evidence(al_inject_state_t *st, unsigned fam, double w)
{
    if (fam >= AL_INJ_NFAM || w <= 0) return;
    if (st->hits[fam] < UINT16_MAX) st->hits[fam]++;
    if (w > st->weight[fam]) st->weight[fam] = w;
    st->families |= 1u << fam;
}

void al_inject_on_match(al_inject_state_t *st, unsigned id, const char *text, size_t len,
                        size_t from, size_t to)
{
    (void)text;
    (void)len;
    (void)from;
    (void)to;
    if (!st || id >= sizeof(g_meta) / sizeof(g_meta[0])) return;
    const struct pmeta *m = &g_meta[id];
    /* Special tokens are also counted for the repetition family; its
     * weight is set in al_inject_end from the count. */
    if (m->kind == T_TOKEN && st->hits[AL_INJ_REPETITION] < UINT16_MAX)
        st->hits[AL_INJ_REPETITION]++;
    /* a repeated token is not a new feature */
    if (m->kind == T_TOKEN && (st->families & (1u << m->fam)) &&
        st->weight[m->fam] >= m->weight / 100.0)
        return;
    add_evidence(st, m->fam, m->weight / 100.0);
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

/* Case-insensitive (ASCII) search for a lower-case needle. */
static bool has_ci(const char *p, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0 || n > len) return n == 0;
    const unsigned char *t = (const unsigned char *)p;
    unsigned char c0 = (unsigned char)needle[0];
    for (size_t i = 0; i + n <= len; i++) {
        if (lower(t[i]) != c0) continue;
        size_t k = 1;
        while (k < n && lower(t[i + k]) == (unsigned char)needle[k]) k++;
        if (k == n) return true;
    }
    return false;
}

/* --- talking about injection rather than doing it ------------------------- */

/* A quote mark followed by an override verb, the quote closing within 160
 * bytes: the text mentions an attack phrase ("what does 'ignore previous
 * instructions' do?").  Returns the number of such mentions. */
static unsigned quoted_mentions(const char *p, size_t len)
{
    static const char *const verbs[] = {"ignore", "disregard", "forget", "ignoriere",
                                        "vergiss", "oublie", "olvida", "ignora",
                                        "you are now", "repeat your", "reveal your", "print your",
                                        "system:", "<|im_start|>"};
    const unsigned char *t = (const unsigned char *)p;
    unsigned n = 0;
    for (size_t i = 0; i < len; i++) {
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

/* How strongly the text talks about injection, in [0, DISCUSS_MAX]. */
static double discussion(const char *p, size_t len)
{
    double keep_topic = 1.0, keep_gen = 1.0;
    unsigned q = quoted_mentions(p, len);
    if (q) keep_topic *= 0.55;
    for (size_t i = 0; i < sizeof(g_cues) / sizeof(g_cues[0]); i++) {
        if (!has_ci(p, len, g_cues[i].s)) continue;
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

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
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
    while (i < len && d->blobs < DECODE_MAX_BLOBS) {
        if (b64_val(t[i]) < 0) {
            i++;
            continue;
        }
        size_t s = i;
        bool up = false, lo = false;
        while (i < len && b64_val(t[i]) >= 0) {
            up |= t[i] >= 'A' && t[i] <= 'Z';
            lo |= t[i] >= 'a' && t[i] <= 'z';
            i++;
        }
        size_t n = i - s;
        if (n < B64_MIN || !up || !lo) continue;
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

/* The patterns allow up to three whitespace bytes between words (bounded
 * repeats keep the database small); a text with longer runs is rescanned
 * with each run collapsed to one space. */
static void scan_spread(al_inject_state_t *st, dctx_t *d, const char *text, size_t len,
                        int level)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t run = 0;
    bool wide = false;
    for (size_t i = 0; i < len && !wide; i++) {
        run = (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r') ? run + 1 : 0;
        wide = run > 3;
    }
    if (!wide || len > d->budget) return;
    char *c = malloc(len);
    if (!c) return;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        bool ws = t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r';
        if (ws && n && c[n - 1] == ' ') continue;
        c[n++] = ws ? ' ' : (char)t[i];
    }
    rescan_payload(st, d, c, n, AL_INJ_NFAM, MAX_NEST);
    free(c);
    (void)level;
}

static void process(al_inject_state_t *st, dctx_t *d, const char *p, size_t len, int level)
{
    scan_invisible(st, d, p, len, level);
    scan_base64(st, d, p, len, level);
    if (level == 0) scan_spread(st, d, p, len, level);
}

/* --- repetition ---------------------------------------------------------- */

static bool is_sep(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '.' || c == ';' ||
           c == '!' || c == '?';
}

static void repetition(al_inject_state_t *st, const char *text, size_t len, unsigned tokens)
{
    const unsigned char *t = (const unsigned char *)text;
    double w = 0;
    if (tokens >= 12) w = 0.85;
    else if (tokens >= 6) w = 0.7;
    else if (tokens >= 3) w = 0.5;

    /* the longest run of one byte (separators and drawing characters aside) */
    size_t run = 0, best = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = t[i];
        if (i && c == t[i - 1] && !strchr(" \t\r\n-=_*#.~+/|<>", c) && c != 0) run++;
        else run = 1;
        if (run > best) best = run;
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
