// The words and numbers the widget shows, in the page's language: numbers in Intl's compact
// notation ("1.2K", "1,2 k", "1,2万"), plural forms by the language's rules, and every string
// replaceable by the page (config.texts).

var WORDS = {
  connecting: "Connecting...",
  reconnecting: "Reconnecting...",
  // A count below the site's privacy floor: the floor, not the count.
  fewerThan: "fewer than {n}",
  unknownSite: "Unknown site",
  pageNotCounted: "Not among the site's busiest pages",
  // What screen readers hear (config.announce), by plural category.
  online: { one: "{n} person here now", other: "{n} people here now" },
  announcerLabel: "Readers online"
};
// Intl's formatters are slow to make: one per language.
var formatters = {};

function language() {
  return (config && config.lang) || document.documentElement.lang || navigator.language || "en";
}

// One of WORDS (or the page's own), with {n} written in: plural forms picked by the language.
function words(key, n) {
  var given = config && config.texts ? config.texts[key] : undefined;
  var text = given !== undefined ? given : WORDS[key];
  if (text && typeof text === "object") {
    text = text[pluralOf(n)] || text.other;
  }
  return String(text).replace("{n}", n === undefined ? "" : formatNumber(n));
}

function formatterFor(lang) {
  if (!formatters[lang]) {
    formatters[lang] = {
      number: new Intl.NumberFormat(lang, { notation: "compact", maximumFractionDigits: 1 }),
      plural: new Intl.PluralRules(lang)
    };
  }
  return formatters[lang];
}

function pluralOf(n) {
  try {
    return formatterFor(language()).plural.select(n);
  } catch (e) {
    return n === 1 ? "one" : "other";
  }
}

// As the page's language writes a count (in English as the original did: "1.2K", "3.5M").
function formatNumber(n) {
  try {
    return formatterFor(language()).number.format(n);
  } catch (e) {
    // A language tag Intl refuses.
    return String(n);
  }
}
