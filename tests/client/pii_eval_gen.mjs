// pii_eval_gen.mjs - a labelled PII evaluation set for `airlock guard scan`.
//
// Builds about 2000 short support, sales and coding snippets (tickets,
// emails, chat lines, shell and config fragments, log lines) in five locales
// (en_US, en_GB, de, fr, en_IN; German and French snippets are written in
// those languages) by filling hand-written templates with @faker-js/faker
// values, and knows the UTF-8 byte span of every inserted value:
//   EMAIL        faker internet.email (free-mail and company domains)
//   PHONE        faker phone.number of the locale, styles human / national /
//                international (E.164), as faker writes them (extensions too)
//   CREDIT_CARD  faker finance.creditCardNumber (Luhn-valid) of the common
//                issuers, as faker groups it, or in 4-digit groups, or bare
//   IBAN         faker finance.iban (checked mod 97), grouped or compact
//   US_SSN       generated here within the SSA's rules (area 001-899 but
//                not 666, group 01-99, serial 0001-9999), dashed mostly
//   IP_ADDRESS   faker internet.ipv4 / ipv6, v6 also in compressed form
//   SECRET       AWS access key ids (AKIA/ASIA), OpenAI keys (legacy and
//                project), GitHub tokens (classic ones with their CRC32
//                checksum, fine-grained), Slack tokens, JWTs
// and of every hard negative (order and invoice numbers, SAP-style PO
// numbers, UUIDs, ISO and epoch timestamps, versions including Windows
// build numbers, prices, git SHAs, tracking numbers): a finding on one of
// those is a false positive.  Values are never shaped to suit a detector:
// faker's formats are kept as they come, with one repair (faker's de
// locale writes international numbers as "+49-0xxx", keeping the trunk 0 no
// one dials after +49; it is dropped).
//
// Deterministic for a seed and the pinned faker version.  As a module:
// generate({seed, n}) -> [{id, locale, domain, text, spans, negatives}],
// spans/negatives [{entity|kind, start, end, value}] with byte offsets.  As
// a script: `node pii_eval_gen.mjs [--seed N] [--n N]` prints JSON lines.

import { fakerEN_US, fakerEN_GB, fakerDE, fakerFR, fakerEN_IN } from '@faker-js/faker';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

export const ENTITIES = ['EMAIL', 'PHONE', 'CREDIT_CARD', 'IBAN', 'US_SSN', 'IP_ADDRESS', 'SECRET'];

const LOCALES = [
  { name: 'en_US', f: fakerEN_US, lang: 'en', weight: 0.3, iban: ['DE', 'GB', 'FR', 'NL', 'ES', 'CH'] },
  { name: 'en_GB', f: fakerEN_GB, lang: 'en', weight: 0.2, iban: ['GB'] },
  { name: 'de', f: fakerDE, lang: 'de', weight: 0.2, iban: ['DE', 'AT', 'CH'] },
  { name: 'fr', f: fakerFR, lang: 'fr', weight: 0.15, iban: ['FR', 'BE'] },
  { name: 'en_IN', f: fakerEN_IN, lang: 'en', weight: 0.15, iban: ['GB', 'DE'] },
];

// ------------------------------------------------------------ checks

export function luhnOk(s) {
  const d = s.replace(/\D/g, '');
  let sum = 0;
  for (let i = 0; i < d.length; i++) {
    let x = Number(d[d.length - 1 - i]);
    if (i % 2 === 1) { x *= 2; if (x > 9) x -= 9; }
    sum += x;
  }
  return d.length >= 12 && sum % 10 === 0;
}

export function ibanOk(s) {
  const t = s.replace(/\s/g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(t)) return false;
  const r = t.slice(4) + t.slice(0, 4);
  let m = 0;
  for (const c of r) {
    const v = /[A-Z]/.test(c) ? String(c.charCodeAt(0) - 55) : c;
    for (const ch of v) m = (m * 10 + Number(ch)) % 97;
  }
  return m === 1;
}

// ------------------------------------------------------------ value makers

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ALNUM = B62;
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const B64URL = `${B62}-_`;

function makers(f) {
  const pick = (a) => a[f.number.int({ min: 0, max: a.length - 1 })];
  const chance = (p) => f.number.float({ min: 0, max: 1 }) < p;
  const str = (alphabet, n) => { let s = ''; for (let i = 0; i < n; i++) s += alphabet[f.number.int({ min: 0, max: alphabet.length - 1 })]; return s; };
  const digits = (n) => f.string.numeric({ length: n, allowLeadingZeros: true });
  const b64url = (buf) => Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');

  const M = { pick, chance, str, digits };

  M.EMAIL = () => {
    const first = f.person.firstName();
    const last = f.person.lastName();
    const r = f.number.int({ min: 0, max: 3 });
    if (r === 0) return f.internet.email({ firstName: first, lastName: last });
    if (r === 1) return f.internet.email({ firstName: first, lastName: last, provider: f.internet.domainName() });
    if (r === 2) return f.internet.email();
    return f.internet.email({ firstName: first, lastName: last, provider: `${f.internet.domainWord()}.${pick(['com', 'io', 'co.uk', 'de', 'fr', 'in', 'net'])}` });
  };

  M.PHONE = (loc) => {
    const style = pick(['human', 'human', 'national', 'national', 'international']);
    let p = f.phone.number({ style });
    if (loc === 'de') p = p.replace(/^\+49-0/, '+49-');
    return p;
  };

  M.CREDIT_CARD = () => {
    const issuer = pick(['visa', 'visa', 'visa', 'mastercard', 'mastercard', 'american_express', 'discover', 'jcb', 'diners_club']);
    let c;
    do { c = f.finance.creditCardNumber({ issuer }); } while (!luhnOk(c));
    const d = c.replace(/\D/g, '');
    const r = f.number.float({ min: 0, max: 1 });
    if (r < 0.4) return c;
    if (r < 0.8 && d.length === 16) return d.match(/.{4}/g).join(' ');
    if (r < 0.8 && d.length === 15) return `${d.slice(0, 4)} ${d.slice(4, 10)} ${d.slice(10)}`;
    return d;
  };

  M.IBAN = (countries) => {
    let v;
    do { v = f.finance.iban({ formatted: chance(0.6), countryCode: pick(countries) }); } while (!ibanOk(v));
    return v;
  };

  M.US_SSN = () => {
    let area;
    do { area = f.number.int({ min: 1, max: 899 }); } while (area === 666);
    const group = f.number.int({ min: 1, max: 99 });
    const serial = f.number.int({ min: 1, max: 9999 });
    const a = String(area).padStart(3, '0');
    const g = String(group).padStart(2, '0');
    const s = String(serial).padStart(4, '0');
    const r = f.number.float({ min: 0, max: 1 });
    if (r < 0.8) return `${a}-${g}-${s}`;
    if (r < 0.92) return `${a} ${g} ${s}`;
    return `${a}${g}${s}`;
  };

  M.IP_ADDRESS = () => {
    if (chance(0.7)) return f.internet.ipv4();
    const full = f.internet.ipv6();
    if (chance(0.4)) return full;
    // compressed: a run of zero groups becomes "::", leading zeros dropped
    const g = full.split(':').map((x) => x.replace(/^0+(?=.)/, ''));
    const at = f.number.int({ min: 1, max: 5 });
    const len = f.number.int({ min: 2, max: 8 - at - 1 });
    return `${g.slice(0, at).join(':')}::${g.slice(at + len).join(':')}`;
  };

  const ghClassic = (prefix) => {
    const body = str(ALNUM, 30);
    let n = zlib.crc32(body) >>> 0;
    let cs = '';
    while (n > 0) { cs = B62[n % 62] + cs; n = Math.floor(n / 62); }
    return `${prefix}${body}${cs.padStart(6, '0')}`;
  };
  const SECRET_KINDS = { aws: [0, 1], openai: [2, 3], github: [4, 5], slack: [6, 7], jwt: [8] };
  M.SECRET = (kind) => {
    const ks = SECRET_KINDS[kind] || [0, 1, 2, 3, 4, 5, 6, 7, 8];
    const k = pick(ks);
    switch (k) {
      case 0: return `AKIA${str(B32, 16)}`;
      case 1: return `ASIA${str(B32, 16)}`;
      case 2: return `sk-${str(ALNUM, 20)}T3BlbkFJ${str(ALNUM, 20)}`;
      case 3: return `sk-proj-${str(B64URL, 74)}T3BlbkFJ${str(B64URL, 74)}`;
      case 4: return ghClassic(pick(['ghp_', 'ghp_', 'gho_', 'ghs_']));
      case 5: return `github_pat_11${str('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 20)}_${str(ALNUM, 59)}`;
      case 6: return `xoxb-${digits(f.number.int({ min: 10, max: 13 }))}-${digits(f.number.int({ min: 10, max: 13 }))}-${str(ALNUM, 24)}`;
      case 7: return `xoxp-${digits(11)}-${digits(11)}-${digits(13)}-${str('0123456789abcdef', 32)}`;
      default: {
        const now = 1767225600 + f.number.int({ min: 0, max: 3e7 });
        const head = b64url(JSON.stringify({ alg: pick(['HS256', 'RS256']), typ: 'JWT' }));
        const body = b64url(JSON.stringify({ sub: f.string.uuid(), name: f.person.fullName(), iat: now, exp: now + 3600 }));
        return `${head}.${body}.${b64url(f.string.hexadecimal({ length: 64, prefix: '' }).match(/../g).map((h) => parseInt(h, 16)))}`;
      }
    }
  };

  // hard negatives
  M.ORDER = () => pick([
    () => `ORD-${f.number.int({ min: 2019, max: 2026 })}-${digits(6)}`,
    () => `#${f.number.int({ min: 10000000, max: 99999999 })}`,
    () => `${digits(3)}-${digits(7)}-${digits(7)}`,
    () => `INV-${digits(6)}`,
    () => `45${digits(8)}`,
    () => `1Z${str('ABCDEFGHJKLMNPRSTUVWXYZ0123456789', 6)}${digits(10)}`,
    () => `${f.number.int({ min: 100000, max: 999999 })}`,
  ])();
  M.UUID = () => f.string.uuid();
  M.TS = () => {
    const d = f.date.between({ from: '2024-01-01T00:00:00Z', to: '2026-12-31T00:00:00Z' });
    return pick([
      () => d.toISOString(),
      () => d.toISOString().replace('T', ' ').replace('Z', ''),
      () => String(Math.floor(d.getTime() / 1000)),
      () => String(d.getTime()),
      () => d.toISOString().slice(0, 10),
    ])();
  };
  M.VER = () => pick([
    () => `v${f.system.semver()}`,
    () => f.system.semver(),
    () => `${f.system.semver()}-rc.${f.number.int({ min: 1, max: 9 })}`,
    () => `10.0.${f.number.int({ min: 17763, max: 26100 })}.${f.number.int({ min: 100, max: 6000 })}`,
  ])();
  M.PRICE = (lang) => {
    const n = f.number.int({ min: 5, max: 9999 });
    const c = f.number.int({ min: 0, max: 99 });
    if (lang === 'de' || lang === 'fr') return pick([`${n.toLocaleString('de-DE')},${String(c).padStart(2, '0')} €`, `€ ${n},${String(c).padStart(2, '0')}`, `${n} €`]);
    return pick([`$${n.toLocaleString('en-US')}.${String(c).padStart(2, '0')}`, `£${n}.${String(c).padStart(2, '0')}`, `₹${(n * 83).toLocaleString('en-IN')}`, `USD ${n}`]);
  };
  M.SHA = () => (chance(0.6) ? f.git.commitSha() : f.git.commitSha({ length: 7 }));
  return M;
}

// ------------------------------------------------------------ templates

// A tagged template: strings and plain values are text; {entity|kind, value,
// pre, post} markers are text whose value's byte span is recorded (pre and
// post are written around it, outside the span).
function T(strings, ...vals) {
  let text = '';
  const spans = [];
  const negatives = [];
  strings.forEach((s, i) => {
    text += s;
    if (i >= vals.length) return;
    const v = vals[i];
    if (v && typeof v === 'object') {
      text += v.pre || '';
      const start = Buffer.byteLength(text);
      text += v.value;
      const end = Buffer.byteLength(text);
      text += v.post || '';
      if (v.entity) spans.push({ entity: v.entity, start, end, value: v.value });
      else negatives.push({ kind: v.kind, start, end, value: v.value });
    } else {
      text += String(v);
    }
  });
  return { text, spans, negatives };
}

// Each template: [domain, languages, fn(c)] where c has the value makers
// (c.EMAIL() etc. return markers; c.name, c.company... plain strings).
const TEMPLATES = [
  // --- support, English
  ['support', ['en'], (c) => T`Hi, this is ${c.first}. I can't log in to my account — my email is ${c.EMAIL()} and my last order was ${c.ORDER()}. Could you call me back at ${c.PHONE()}?`],
  ['support', ['en'], (c) => T`Customer ${c.name} (${c.EMAIL()}, ${c.PHONE()}) reports a double charge of ${c.PRICE()} on card ${c.CREDIT_CARD()}. Ticket ${c.UUID()} opened ${c.TS()}.`],
  ['support', ['en'], (c) => T`Please update my payout details: IBAN ${c.IBAN()}, account holder ${c.name}. Reference ${c.ORDER()}.`],
  ['support', ['en'], (c) => T`My number changed, it's ${c.PHONE()} now. Please update it on order ${c.ORDER()}. Thanks, ${c.first}`],
  ['support', ['en'], (c) => T`The card ending in ${c.last4} was declined, so I tried ${c.CREDIT_CARD()} instead and got charged ${c.PRICE()} twice.`],
  ['support', ['en'], (c) => T`Refund of ${c.PRICE()} for order ${c.ORDER()} was processed on ${c.TS()}. Nothing else is needed from you.`],
  ['support', ['en'], (c) => T`hey, the app keeps logging me out when I connect from ${c.IP_ADDRESS()} (app version ${c.VER()}). can someone look? ${c.EMAIL()}`],
  ['support', ['en-US'], (c) => T`For the tax form I need to confirm my SSN: ${c.US_SSN()}. You can reach me at ${c.EMAIL()} or ${c.PHONE()}.`],
  ['support', ['en-US'], (c) => T`Identity verification for ${c.name}: SSN ${c.US_SSN()}, DOB on file, claim ${c.ORDER()} filed ${c.TS()}.`],
  ['support', ['en-US'], (c) => T`I'm disputing the charge on ${c.CREDIT_CARD()}. Social security number ${c.US_SSN()} if you need it to verify me.`],
  // --- sales, English
  ['sales', ['en'], (c) => T`Great talking today, ${c.first}! As discussed, the Enterprise plan is ${c.PRICE()}/month for ${c.seats} seats. My direct line is ${c.PHONE()}; please send the PO to ${c.EMAIL()}.`],
  ['sales', ['en'], (c) => T`Signed order form ${c.ORDER()} received from ${c.company}. Billing contact ${c.name}, ${c.EMAIL()}, ${c.PHONE()}.`],
  ['sales', ['en'], (c) => T`Please wire the deposit of ${c.PRICE()} to IBAN ${c.IBAN()} (BIC ${c.bic}) before ${c.date}. Questions to ${c.EMAIL()}.`],
  ['sales', ['en'], (c) => T`Quote ${c.ORDER()} for ${c.company}: ${c.seats} licences at ${c.PRICE()} each, valid until ${c.TS()}. Contact ${c.name}.`],
  ['sales', ['en'], (c) => T`Card for the annual renewal: ${c.CREDIT_CARD()}, exp ${c.exp}, name on card ${c.name}. Invoice to ${c.EMAIL()} please.`],
  ['support', ['en-US'], (c) => T`Payroll question: I started on ${c.date} and my first paycheck went to the wrong account. Employee ${c.name}, SSN ${c.US_SSN()}, order of the new card ${c.ORDER()}.`],
  ['support', ['en-US'], (c) => T`Hi, I'm applying for the loan and the form keeps rejecting my social security number ${c.US_SSN()}. My phone is ${c.PHONE()}.`],
  ['support', ['en-US'], (c) => T`W-2 correction request: name ${c.name}, SSN ${c.US_SSN()}, employer ${c.company}, mailing updates to ${c.EMAIL()}.`],
  ['coding', ['en-US'], (c) => T`INSERT INTO customers (name, ssn, email, created_at) VALUES ('${c.name}', '${c.US_SSN()}', '${c.EMAIL()}', '${c.TS()}');`],
  ['sales', ['en-US'], (c) => T`New vendor onboarding for ${c.company}: sole proprietor ${c.name}, SSN ${c.US_SSN()} (for the W-9), phone ${c.PHONE()}.`],
  // --- support / sales, German
  ['support', ['de'], (c) => T`Hallo, mein Name ist ${c.name}. Bitte überweisen Sie die Erstattung auf mein Konto: IBAN ${c.IBAN()}. Rückfragen gern unter ${c.PHONE()} oder ${c.EMAIL()}.`],
  ['support', ['de'], (c) => T`Sehr geehrte Damen und Herren, meine Bestellung ${c.ORDER()} vom ${c.date} ist nicht angekommen. Sie erreichen mich unter ${c.PHONE()}. Mit freundlichen Grüßen, ${c.name}`],
  ['support', ['de'], (c) => T`Die Kreditkarte ${c.CREDIT_CARD()} wurde doppelt belastet (${c.PRICE()}). Bitte prüfen Sie das. E-Mail: ${c.EMAIL()}`],
  ['support', ['de'], (c) => T`Der Server ${c.IP_ADDRESS()} antwortet seit ${c.TS()} nicht mehr, installierte Version ${c.VER()}. Ticket ${c.UUID()}.`],
  ['sales', ['de'], (c) => T`Angebot Nr. ${c.ORDER()}: ${c.seats} Lizenzen zu je ${c.PRICE()}. Ansprechpartner: ${c.name}, Tel. ${c.PHONE()}, ${c.EMAIL()}.`],
  ['sales', ['de'], (c) => T`Bitte die Anzahlung von ${c.PRICE()} bis zum ${c.date} auf IBAN ${c.IBAN()} überweisen. Verwendungszweck: ${c.ORDER()}.`],
  ['support', ['de'], (c) => T`Rechnung ${c.ORDER()} über ${c.PRICE()} wurde am ${c.date} bezahlt. Vielen Dank!`],
  // --- support / sales, French
  ['support', ['fr'], (c) => T`Bonjour, je m'appelle ${c.name}. Pouvez-vous effectuer le remboursement sur mon IBAN ${c.IBAN()} ? Mon numéro : ${c.PHONE()}.`],
  ['support', ['fr'], (c) => T`Ma commande ${c.ORDER()} du ${c.date} n'est jamais arrivée. Écrivez-moi à ${c.EMAIL()} ou appelez le ${c.PHONE()}.`],
  ['support', ['fr'], (c) => T`La carte ${c.CREDIT_CARD()} a été débitée deux fois de ${c.PRICE()}. Merci de vérifier rapidement.`],
  ['support', ['fr'], (c) => T`Depuis ${c.TS()}, impossible de se connecter depuis l'adresse ${c.IP_ADDRESS()} (version ${c.VER()}).`],
  ['sales', ['fr'], (c) => T`Devis n° ${c.ORDER()} : ${c.seats} licences à ${c.PRICE()} HT. Contact : ${c.name}, ${c.PHONE()}, ${c.EMAIL()}.`],
  ['sales', ['fr'], (c) => T`Merci de virer l'acompte de ${c.PRICE()} sur le compte ${c.IBAN()} avant le ${c.date}.`],
  ['support', ['fr'], (c) => T`Facture ${c.ORDER()} réglée le ${c.date} pour un montant de ${c.PRICE()}.`],
  // --- coding, every locale
  ['coding', ['*'], (c) => T`export AWS_ACCESS_KEY_ID=${c.SECRET('aws')}\nexport AWS_DEFAULT_REGION=eu-west-1\n# deployed ${c.VER()} at ${c.TS()}`],
  ['coding', ['*'], (c) => T`const client = new OpenAI({ apiKey: "${c.SECRET('openai')}" }); // TODO: move to env before ${c.VER()}`],
  ['coding', ['*'], (c) => T`curl -s -H "Authorization: Bearer ${c.SECRET()}" https://api.${c.domain}/v1/orders/${c.UUID()}`],
  ['coding', ['*'], (c) => T`SLACK_BOT_TOKEN=${c.SECRET('slack')}\nSLACK_CHANNEL=#deploys\nBUILD=${c.VER()}`],
  ['coding', ['*'], (c) => T`why does this fail?\n\n  token = "${c.SECRET()}"\n  requests.get(url, headers={"Authorization": f"token {token}"})\n\nit worked on ${c.VER()}`],
  ['coding', ['*'], (c) => T`2026/01/14 09:32:11 [error] 2231#2231: *48213 upstream timed out (110: Connection timed out) while connecting to upstream, client: ${c.IP_ADDRESS()}, server: ${c.domain}, request: "GET /api/v2/items/${c.ORDER()} HTTP/1.1", upstream: "http://${c.HOSTPORT(8080)}/"`],
  ['coding', ['*'], (c) => T`${c.IP_ADDRESS()} - - [14/Jan/2026:09:32:11 +0000] "POST /login HTTP/1.1" 401 512 "-" "Mozilla/5.0"`],
  ['coding', ['*'], (c) => T`Build ${c.VER()} (commit ${c.SHA()}) finished at ${c.TS()}; artifact ${c.UUID()}.`],
  ['coding', ['*'], (c) => T`migration ${c.TS()}_add_orders failed on row ${c.ORDER()}: duplicate key value violates unique constraint "users_email_key" (${c.EMAIL()})`],
  ['coding', ['*'], (c) => T`test fixture:\n  user = User(email="${c.EMAIL()}", phone="${c.PHONE()}", card="${c.CREDIT_CARD()}")\n  assert user.id == "${c.UUID()}"`],
  ['coding', ['*'], (c) => T`[Peer]\nPublicKey = ${c.PUBKEY()}\nEndpoint = ${c.HOSTPORT(51820)}\nPersistentKeepalive = 25`],
  ['coding', ['*'], (c) => T`git push failed: remote: Invalid username or password. (used https://${c.SECRET('github')}@github.com/${c.slug}.git, HEAD ${c.SHA()})`],
  ['coding', ['*'], (c) => T`Upgrading from ${c.VER()} to ${c.VER()} changed the timestamp format: ${c.TS()} vs ${c.TS()}.`],
];

// ------------------------------------------------------------ generate

export function generate({ seed = 20261122, n = 2000 } = {}) {
  LOCALES.forEach((l, i) => l.f.seed(seed + 7919 * i));
  const chooser = fakerEN_US; // structure decisions
  const out = [];
  for (let k = 0; k < n; k++) {
    let r = chooser.number.float({ min: 0, max: 1 });
    let loc = LOCALES[LOCALES.length - 1];
    for (const l of LOCALES) { if (r < l.weight) { loc = l; break; } r -= l.weight; }
    const f = loc.f;
    const M = makers(f);
    const fits = TEMPLATES.filter(([, langs]) => langs.includes('*') || langs.includes(loc.lang) || (loc.name === 'en_US' && langs.includes('en-US')));
    // coding templates make up about a third of the set
    const coding = fits.filter((t) => t[0] === 'coding');
    const prose = fits.filter((t) => t[0] !== 'coding');
    const pool = chooser.number.float({ min: 0, max: 1 }) < 0.33 ? coding : prose;
    const [domain, , fn] = pool[chooser.number.int({ min: 0, max: pool.length - 1 })];
    const first = f.person.firstName();
    const c = {
      first,
      name: `${first} ${f.person.lastName()}`,
      company: f.company.name(),
      domain: f.internet.domainName(),
      bic: f.finance.bic(),
      date: f.date.soon({ days: 60, refDate: '2026-01-14T00:00:00Z' }).toISOString().slice(0, 10),
      seats: f.number.int({ min: 5, max: 500 }),
      last4: f.string.numeric(4),
      exp: `${String(f.number.int({ min: 1, max: 12 })).padStart(2, '0')}/${f.number.int({ min: 27, max: 31 })}`,
      slug: `${f.internet.domainWord()}/${f.internet.domainWord()}`,
      EMAIL: () => ({ entity: 'EMAIL', value: M.EMAIL() }),
      PHONE: () => ({ entity: 'PHONE', value: M.PHONE(loc.name) }),
      CREDIT_CARD: () => ({ entity: 'CREDIT_CARD', value: M.CREDIT_CARD() }),
      IBAN: () => ({ entity: 'IBAN', value: M.IBAN(loc.iban) }),
      US_SSN: () => ({ entity: 'US_SSN', value: M.US_SSN() }),
      IP_ADDRESS: () => ({ entity: 'IP_ADDRESS', value: M.IP_ADDRESS() }),
      SECRET: (kind) => ({ entity: 'SECRET', value: M.SECRET(kind) }),
      HOSTPORT: (port) => {
        const v = M.IP_ADDRESS();
        return v.includes(':') ? { entity: 'IP_ADDRESS', value: v, pre: '[', post: `]:${port}` } : { entity: 'IP_ADDRESS', value: v, post: `:${port}` };
      },
      ORDER: () => ({ kind: 'order', value: M.ORDER() }),
      UUID: () => ({ kind: 'uuid', value: M.UUID() }),
      TS: () => ({ kind: 'timestamp', value: M.TS() }),
      VER: () => ({ kind: 'version', value: M.VER() }),
      PRICE: () => ({ kind: 'price', value: M.PRICE(loc.lang) }),
      SHA: () => ({ kind: 'sha', value: M.SHA() }),
      PUBKEY: () => ({ kind: 'public_key', value: Buffer.from(f.string.hexadecimal({ length: 64, prefix: '' }).slice(0), 'hex').toString('base64') }),
    };
    const s = fn(c);
    out.push({ id: k, locale: loc.name, domain, ...s });
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name, d) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : d;
  };
  for (const s of generate({ seed: arg('--seed', 20261122), n: arg('--n', 2000) })) {
    process.stdout.write(`${JSON.stringify(s)}\n`);
  }
}
