/*
 * clickstream tracker — one file, no build step, no third-party code.
 *
 *   <script src="/tracker.js" data-endpoint="https://ingest.example.com/events"></script>
 *   clickstream.track("product_view", {product: {id: "1004856", name: "...", price: 130.76}});
 *   clickstream.identify("user-42");       // stores user_id, sends sign_in
 *   clickstream.flush().then(...);          // sends what is queued now
 *
 * Events follow contract/event-v1.schema.json. The queue of unsent events is kept in
 * localStorage, so a failed send is retried later (same event_id: the server and the
 * warehouse recognise a resent event) and nothing is lost when the page closes before a send.
 *
 * Consent (docs/ingest.md, "Consent in the tracker"): data-consent="none" (default) tracks as
 * above; "opt-out" tracks until clickstream.consent("denied"); "required" sends nothing and
 * stores nothing in the browser (no cookie, no localStorage) until clickstream.consent("granted"):
 * the page's events wait in memory, are sent once granted and dropped when denied.
 * data-cookieless="denied" counts a visitor who said no without any id of theirs ("pending":
 * also before they choose); "off" (default) sends nothing for them. Global Privacy Control and
 * Do Not Track in the browser always mean cookieless events only (data-respect-signals="false"
 * turns that off). The choice itself ("granted" / "denied") is the one thing kept.
 */
(function (window, document) {
  "use strict";

  var script = document.currentScript;
  function attr(name, fallback) {
    var value = script && script.getAttribute("data-" + name);
    return value === null || value === undefined || value === "" ? fallback : value;
  }

  var config = {
    endpoint: attr("endpoint", "/events"),
    sessionTimeoutMs: 30 * 60 * 1000,
    flushDelayMs: Number(attr("flush-delay", 1000)),
    batchSize: 50, // events per request (the endpoint takes up to 500)
    maxBatchBytes: 60000, // keepalive fetch and sendBeacon bodies must stay under 64 KiB
    maxQueue: 1000,
    maxRetryDelayMs: 60000,
    cookieDays: 395,
    prefix: "cs_",
    consent: attr("consent", "none"), // "none" | "opt-out" | "required"
    cookieless: attr("cookieless", "off"), // "off" | "denied" | "pending"
    respectSignals: attr("respect-signals", "true") !== "false",
  };
  var COOKIELESS = "cookieless"; // the ingest endpoint gives such events a visitor id of the day

  // ---- consent: the visitor's choice, and what it lets the tracker do
  var memoryChoice = null;
  function currentChoice() {
    try {
      return window.localStorage.getItem(config.prefix + "consent") || memoryChoice;
    } catch (e) {
      return memoryChoice;
    }
  }
  function privacySignal() {
    var dnt = navigator.doNotTrack === "1" || window.doNotTrack === "1" || navigator.msDoNotTrack === "1";
    return config.respectSignals && (navigator.globalPrivacyControl === true || dnt);
  }
  /** "full" (ids stored and sent), "cookieless" (no id stored or sent), "hold" (events wait in
   *  memory for a choice) or "off" (nothing is tracked). */
  function mode() {
    if (privacySignal()) return "cookieless";
    var choice = currentChoice();
    var fallback = config.cookieless === "off" ? "off" : "cookieless";
    if (config.consent === "opt-out") return choice === "denied" ? fallback : "full";
    if (config.consent === "required") {
      if (choice === "granted") return "full";
      if (choice === "denied") return fallback;
      return config.cookieless === "pending" ? "cookieless" : "hold";
    }
    return "full";
  }
  function persisting() {
    return mode() === "full";
  }

  // ---- storage: localStorage with an in-memory fallback (private mode, disabled storage)
  var memory = {};
  var storage = {
    get: function (key) {
      if (!persisting()) return memory[key];
      try {
        var v = window.localStorage.getItem(config.prefix + key);
        return v === null ? memory[key] : v;
      } catch (e) {
        return memory[key];
      }
    },
    set: function (key, value) {
      memory[key] = value;
      if (!persisting()) return;
      try {
        window.localStorage.setItem(config.prefix + key, value);
      } catch (e) {
        /* quota or disabled: memory only */
      }
    },
    remove: function (key) {
      delete memory[key];
      try {
        window.localStorage.removeItem(config.prefix + key);
      } catch (e) {
        /* ignore */
      }
    },
  };

  function readJSON(key, fallback) {
    try {
      var v = storage.get(key);
      return v ? JSON.parse(v) : fallback;
    } catch (e) {
      return fallback;
    }
  }

  function getCookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return null;
  }

  function setCookie(name, value, days) {
    if (!persisting() && days > 0) return;
    var expires = new Date(Date.now() + days * 864e5).toUTCString();
    var secure = window.location.protocol === "https:" ? "; Secure" : "";
    document.cookie =
      name + "=" + encodeURIComponent(value) + "; expires=" + expires + "; path=/; SameSite=Lax" + secure;
  }

  // ---- ids
  function uuid() {
    var c = window.crypto || window.msCrypto;
    if (c && typeof c.randomUUID === "function") return c.randomUUID();
    var bytes = new Uint8Array(16);
    if (c && typeof c.getRandomValues === "function") {
      c.getRandomValues(bytes);
    } else {
      for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    var hex = [];
    for (var j = 0; j < 16; j++) hex.push((bytes[j] + 0x100).toString(16).slice(1));
    return (
      hex.slice(0, 4).join("") + "-" + hex.slice(4, 6).join("") + "-" + hex.slice(6, 8).join("") + "-" +
      hex.slice(8, 10).join("") + "-" + hex.slice(10, 16).join("")
    );
  }

  // anonymous_id: first-party cookie, mirrored in localStorage (either one restores the other)
  function anonymousId() {
    var id = (persisting() && getCookie(config.prefix + "aid")) || storage.get("aid");
    if (!id) id = uuid();
    setCookie(config.prefix + "aid", id, config.cookieDays);
    storage.set("aid", id);
    return id;
  }

  // ---- traffic: UTM parameters, else the referrer, else direct
  var SEARCH_ENGINES = /(^|\.)(google|bing|yahoo|duckduckgo|baidu|yandex|ecosia|qwant)\./i;
  var SOCIAL = /(^|\.)(facebook|instagram|t\.co|twitter|x\.com|linkedin|pinterest|reddit|tiktok|youtube)\./i;

  function trafficFromPage() {
    var params;
    try {
      params = new URLSearchParams(window.location.search);
    } catch (e) {
      params = { get: function () { return null; } };
    }
    var utm = {
      source: params.get("utm_source"),
      medium: params.get("utm_medium"),
      campaign: params.get("utm_campaign"),
      content: params.get("utm_content"),
      term: params.get("utm_term"),
    };
    if (utm.source || utm.medium || utm.campaign) return utm;
    var referrerHost = "";
    try {
      referrerHost = document.referrer ? new URL(document.referrer).hostname : "";
    } catch (e) {
      referrerHost = "";
    }
    if (referrerHost && referrerHost !== window.location.hostname) {
      var medium = SEARCH_ENGINES.test(referrerHost + ".") ? "organic" : SOCIAL.test(referrerHost) ? "social" : "referral";
      return { source: referrerHost.replace(/^www\./, ""), medium: medium, campaign: null, content: null, term: null };
    }
    return null; // internal navigation or no referrer: keep the session's traffic
  }

  var DIRECT = { source: "(direct)", medium: "(none)", campaign: null, content: null, term: null };

  // ---- session: new after 30 minutes of inactivity, or when a new campaign arrives
  function currentSession(now) {
    var session = readJSON("session", null);
    var landing = trafficFromPage();
    var expired = !session || !session.id || now - (session.last || 0) > config.sessionTimeoutMs;
    var newCampaign =
      session && landing && session.traffic &&
      (landing.source !== session.traffic.source || landing.campaign !== session.traffic.campaign) &&
      hasUtm();
    if (expired || newCampaign) {
      session = { id: uuid(), start: now, traffic: landing || DIRECT };
    }
    session.last = now;
    storage.set("session", JSON.stringify(session));
    return session;
  }

  function hasUtm() {
    return /[?&]utm_(source|medium|campaign)=/.test(window.location.search);
  }

  // ---- device
  function deviceInfo() {
    var ua = navigator.userAgent || "";
    var type = "other";
    if (/iPad|Tablet|PlayBook|Silk|Kindle|Nexus (7|9|10)/i.test(ua) || (/Android/i.test(ua) && !/Mobile/i.test(ua)) ||
        (/Macintosh/i.test(ua) && navigator.maxTouchPoints > 1)) {
      type = "tablet";
    } else if (/Mobi|iPhone|iPod|Android|Windows Phone|BlackBerry|Opera Mini|IEMobile/i.test(ua)) {
      type = "mobile";
    } else if (/Windows NT|Macintosh|X11|Linux|CrOS/i.test(ua)) {
      type = "desktop";
    }
    var os = /Windows/i.test(ua) ? "Windows" : /iPhone|iPad|iPod/i.test(ua) ? "iOS" : /Mac OS X|Macintosh/i.test(ua) ? "macOS" :
      /Android/i.test(ua) ? "Android" : /CrOS/i.test(ua) ? "ChromeOS" : /Linux/i.test(ua) ? "Linux" : null;
    var browser = /Edg\//.test(ua) ? "Edge" : /OPR\//.test(ua) ? "Opera" : /Firefox\//.test(ua) ? "Firefox" :
      /Chrome\/|CriOS\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : null;
    var screenSize = window.screen ? window.screen.width + "x" + window.screen.height : null;
    return { type: type, user_agent: ua || null, os: os, browser: browser, screen: screenSize };
  }
  var device = deviceInfo();

  // ---- queue (persisted) and sending
  var inflight = {}; // event_id -> true while a request carrying it is open
  var flushTimer = null;
  var retryTimer = null;
  var retryDelay = 0;
  var sending = Promise.resolve(); // the running flush

  function loadQueue() {
    var q = readJSON("queue", []);
    return Array.isArray(q) ? q : [];
  }
  function saveQueue(q) {
    if (q.length) storage.set("queue", JSON.stringify(q));
    else storage.remove("queue");
  }
  function removeFromQueue(ids) {
    var drop = {};
    for (var i = 0; i < ids.length; i++) drop[ids[i]] = true;
    saveQueue(loadQueue().filter(function (e) { return !drop[e.event_id]; }));
  }

  function enqueue(event) {
    var q = loadQueue();
    q.push(event);
    if (q.length > config.maxQueue) {
      var dropped = q.splice(0, q.length - config.maxQueue);
      if (window.console) console.warn("clickstream: queue full, dropped " + dropped.length + " oldest events");
    }
    saveQueue(q);
  }

  // split events into request bodies under the size and count limits
  function batches(events) {
    var out = [];
    var current = [];
    var size = 2;
    for (var i = 0; i < events.length; i++) {
      var eventSize = JSON.stringify(events[i]).length + 1;
      if (current.length && (current.length >= config.batchSize || size + eventSize > config.maxBatchBytes)) {
        out.push(current);
        current = [];
        size = 2;
      }
      current.push(events[i]);
      size += eventSize;
    }
    if (current.length) out.push(current);
    return out;
  }

  function pending() {
    return loadQueue().filter(function (e) { return !inflight[e.event_id]; });
  }

  function post(batch) {
    // a beacon (tab hidden) may have taken some of these meanwhile: send only what is still queued
    var queued = {};
    loadQueue().forEach(function (e) { queued[e.event_id] = true; });
    batch = batch.filter(function (e) { return queued[e.event_id] && !inflight[e.event_id]; });
    if (!batch.length) return Promise.resolve({ ok: true, count: 0 });
    var ids = batch.map(function (e) { return e.event_id; });
    ids.forEach(function (id) { inflight[id] = true; });
    function release() { ids.forEach(function (id) { delete inflight[id]; }); }
    // text/plain keeps the request CORS-simple (no preflight); the endpoint ignores the type
    return window
      .fetch(config.endpoint, {
        method: "POST",
        body: JSON.stringify(batch),
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        keepalive: true,
        credentials: "omit",
      })
      .then(function (response) {
        release();
        if (response.ok) {
          removeFromQueue(ids); // accepted and rejected events are both stored server-side
          return { ok: true, count: ids.length };
        }
        if (response.status === 413 && batch.length > 1) {
          var half = Math.ceil(batch.length / 2);
          return post(batch.slice(0, half)).then(function (a) {
            return post(batch.slice(half)).then(function (b) {
              return { ok: a.ok && b.ok, count: a.count + b.count };
            });
          });
        }
        if (response.status === 400 || response.status === 403 || response.status === 413) {
          // resending the same body can never succeed: give up on it, loudly
          removeFromQueue(ids);
          if (window.console) console.warn("clickstream: endpoint refused " + ids.length + " events (" + response.status + ")");
          return { ok: true, count: 0 };
        }
        return { ok: false, count: 0 }; // 429, 5xx: retry later
      }, function () {
        release();
        return { ok: false, count: 0 }; // network error: retry later
      });
  }

  function scheduleRetry() {
    if (retryTimer) return;
    retryDelay = Math.min(retryDelay ? retryDelay * 2 : 1000, config.maxRetryDelayMs);
    retryTimer = window.setTimeout(function () {
      retryTimer = null;
      flush();
    }, retryDelay);
  }

  /** Send every queued event now. Resolves to {sent, pending} once the requests have ended. */
  function flush() {
    if (flushTimer) {
      window.clearTimeout(flushTimer);
      flushTimer = null;
    }
    if (mode() === "hold") return Promise.resolve({ sent: 0, pending: loadQueue().length });
    // flushes run one after the other, so no event is ever in two requests from this page
    var run = sending.then(function () {
      var groups = batches(pending());
      var sent = 0;
      var failed = false;
      var chain = Promise.resolve();
      groups.forEach(function (group) {
        chain = chain.then(function () {
          if (failed) return;
          return post(group).then(function (r) {
            sent += r.count;
            if (!r.ok) failed = true;
          });
        });
      });
      return chain.then(function () {
        if (failed) scheduleRetry();
        else retryDelay = 0;
        return { sent: sent, pending: loadQueue().length };
      });
    });
    sending = run.catch(function () {});
    return run;
  }

  function scheduleFlush() {
    if (loadQueue().length >= config.batchSize) {
      flush();
    } else if (!flushTimer) {
      flushTimer = window.setTimeout(function () {
        flushTimer = null;
        flush();
      }, config.flushDelayMs);
    }
  }

  // page is going away: hand what is left to the browser. sendBeacon for the unsent events;
  // events already in a keepalive fetch are completed by the browser too.
  function sendOnHide(unloading) {
    if (mode() === "hold") return; // no choice yet: the page's events go with it
    var events = pending();
    var handed = [];
    if (events.length && navigator.sendBeacon) {
      batches(events).forEach(function (group) {
        var body = new Blob([JSON.stringify(group)], { type: "text/plain;charset=UTF-8" });
        var queued = false;
        try {
          queued = navigator.sendBeacon(config.endpoint, body);
        } catch (e) {
          queued = false;
        }
        if (queued) group.forEach(function (e) { handed.push(e.event_id); });
      });
    } else if (events.length) {
      flush();
    }
    if (unloading) {
      for (var id in inflight) if (Object.prototype.hasOwnProperty.call(inflight, id)) handed.push(id);
    }
    if (handed.length) removeFromQueue(handed);
  }

  // ---- the public API
  var RESERVED = { event_id: 1, event_name: 1, event_timestamp: 1, anonymous_id: 1, session_id: 1, schema_version: 1, received_at: 1 };

  /** Queue one event. fields: product, quantity, cart, order, search, properties, page overrides, ... */
  function track(eventName, fields) {
    var current = mode();
    if (current === "off") return null;
    var cookieless = current === "cookieless";
    var now = Date.now();
    var session = currentSession(now);
    var event = {
      event_id: uuid(),
      event_name: eventName,
      event_timestamp: new Date(now).toISOString(),
      anonymous_id: cookieless ? COOKIELESS : anonymousId(),
      session_id: cookieless ? COOKIELESS : session.id,
      user_id: cookieless ? null : storage.get("uid") || null,
      schema_version: "1",
      page: {
        url: window.location.href,
        path: window.location.pathname,
        title: document.title || null,
        referrer: document.referrer || null,
      },
      device: device,
      traffic: session.traffic || DIRECT,
    };
    fields = fields || {};
    for (var key in fields) {
      if (Object.prototype.hasOwnProperty.call(fields, key) && !RESERVED[key] && fields[key] !== undefined) {
        event[key] = key === "page" ? Object.assign({}, event.page, fields.page) : fields[key];
      }
    }
    enqueue(event);
    scheduleFlush();
    return event.event_id;
  }

  /** Remember the signed-in user (sent as user_id from now on) and send sign_in. */
  function identify(userId, fields) {
    if (userId === null || userId === undefined || userId === "") return null;
    storage.set("uid", String(userId));
    return track("sign_in", fields);
  }

  /** Forget the user (sign-out): later events carry no user_id; the anonymous_id stays. */
  function reset() {
    storage.remove("uid");
  }

  var KEYS = ["aid", "session", "uid", "queue"];

  /** The visitor's choice: "granted" or "denied" (a consent banner calls it on every page, or
   *  once: the choice is kept). Returns the mode the tracker is in now. */
  function consent(value) {
    if (value !== "granted" && value !== "denied") throw new Error('clickstream.consent: "granted" or "denied"');
    var before = mode();
    memoryChoice = value;
    try {
      window.localStorage.setItem(config.prefix + "consent", value);
    } catch (e) {
      /* memory only */
    }
    var now = mode();
    if (value === "granted") {
      if (now === "full" && before !== "full") {
        // what waited in memory (the visitor id, the session, the page's events) is kept from now on
        KEYS.forEach(function (key) {
          if (memory[key] !== undefined) storage.set(key, memory[key]);
        });
        if (memory.aid) setCookie(config.prefix + "aid", memory.aid, config.cookieDays);
        if (loadQueue().length) scheduleFlush();
      }
    } else {
      // denied: the events that waited are dropped, and every id the tracker kept is forgotten
      KEYS.forEach(function (key) {
        delete memory[key];
        try {
          window.localStorage.removeItem(config.prefix + key);
        } catch (e) {
          /* ignore */
        }
      });
      document.cookie = config.prefix + "aid=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/; SameSite=Lax";
    }
    return now;
  }

  window.addEventListener("pagehide", function () { sendOnHide(true); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") sendOnHide(false);
  });
  window.addEventListener("online", function () { flush(); });

  var api = {
    track: track,
    identify: identify,
    reset: reset,
    consent: consent,
    consentState: currentChoice,
    consentMode: function () { return config.consent; },
    mode: mode,
    flush: flush,
    page: function (fields) { return track("page_view", fields); },
    anonymousId: anonymousId,
    sessionId: function () { return readJSON("session", {}).id || null; },
    userId: function () { return storage.get("uid") || null; },
    queued: function () { return loadQueue().length; },
    configure: function (options) {
      for (var k in options) if (Object.prototype.hasOwnProperty.call(options, k)) config[k] = options[k];
    },
    uuid: uuid,
    version: "1",
  };
  // commands queued before this file loaded: window.clickstream = [["track", ...], ...]
  var early = Array.isArray(window.clickstream) ? window.clickstream : [];
  window.clickstream = api;
  early.forEach(function (call) {
    if (call && api[call[0]]) api[call[0]].apply(null, call.slice(1));
  });
  // events left unsent by an earlier page (offline, closed tab): send them now
  if (loadQueue().length) scheduleFlush();
})(window, document);
