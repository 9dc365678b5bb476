/* emobench 2AFC experiment page. No build step, no dependencies; works from a static folder or
 * file://. The trial list comes from study.js (window.EMOBENCH_STUDY, written by
 * `emobench trials design`) or, inside an MTurk HTMLQuestion, from window.EMOBENCH_INLINE.
 *
 * URL parameters: set (trial set id), participant, platform (lab|web|prolific|mturk), venue,
 * PROLIFIC_PID / STUDY_ID / SESSION_ID (Prolific), assignmentId / hitId / workerId /
 * turkSubmitTo (MTurk).
 *
 * This file must never contain a dollar sign followed by a brace: MTurk substitutes that pattern
 * in HTMLQuestion templates, and the template inlines this script. */
(function () {
  "use strict";

  var CSV_COLUMNS = ["participant", "venue", "trial", "kind", "source_id", "source_emotion",
    "target", "left_method", "right_method", "choice", "correct_side", "rt_ms", "set",
    "platform", "assignment_id", "hit_id", "study_id", "session_id", "left_image",
    "right_image", "shown_at", "user_agent"];

  var S = window.EMOBENCH_STUDY || {};
  var INLINE = window.EMOBENCH_INLINE || null;
  var params = new URLSearchParams(window.location.search);

  function $(id) { return document.getElementById(id); }
  function show(id) {
    var screens = document.querySelectorAll(".screen");
    for (var i = 0; i < screens.length; i++) { screens[i].hidden = screens[i].id !== id; }
  }

  /* Trials are encoded as "a|b|...;a|b|..." (see src/study/ingest.rs, decode_trials). */
  function decodeTrials(text) {
    var out = [];
    var parts = String(text || "").split(";");
    for (var i = 0; i < parts.length; i++) {
      if (!parts[i].trim()) { continue; }
      var f = parts[i].split("|");
      if (f.length !== 10) { throw new Error("bad trial entry: " + parts[i]); }
      out.push({ trial: parseInt(f[0], 10), kind: f[1], source_id: f[2], source_emotion: f[3],
        target: f[4], left_method: f[5], right_method: f[6], left_image: f[7],
        right_image: f[8], correct_side: f[9] });
    }
    return out;
  }

  function hashString(s) {
    var h = 2166136261;
    for (var i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
    return h >>> 0;
  }

  function randomId() {
    var a = new Uint32Array(2);
    (window.crypto || window.msCrypto).getRandomValues(a);
    return "w" + a[0].toString(36) + a[1].toString(36);
  }

  var platform = params.get("platform") || S.platform || (INLINE ? "mturk" : "lab");
  var venue = params.get("venue") || S.venue || "online";
  var state = {
    participant: "", set: "", trials: [], index: 0, answers: [], shownAt: 0, locked: true,
    assignmentId: params.get("assignmentId") || "", hitId: params.get("hitId") || "",
    studyId: params.get("STUDY_ID") || "", sessionId: params.get("SESSION_ID") || ""
  };

  function chooseSet(pid) {
    if (INLINE) { return { id: INLINE.set, trials: decodeTrials(INLINE.trials) }; }
    var sets = S.sets || {};
    var keys = Object.keys(sets).sort();
    if (!keys.length) { throw new Error("study.js lists no trial sets"); }
    var wanted = params.get("set");
    if (wanted) {
      if (!Object.prototype.hasOwnProperty.call(sets, wanted)) { throw new Error("unknown set '" + wanted + "'"); }
      return { id: wanted, trials: decodeTrials(sets[wanted]) };
    }
    /* Without an explicit set, a participant id maps to a set deterministically, so a reload
     * shows the same trials. */
    var k = keys[hashString(pid || randomId()) % keys.length];
    return { id: k, trials: decodeTrials(sets[k]) };
  }

  function imageUrl(file) {
    var base = (INLINE && INLINE.image_base_url) || S.image_base_url || "";
    return base + file;
  }

  function questionHtml(target) {
    var q = S.question || (INLINE && INLINE.question) || "Which image more strongly evokes {emotion}?";
    var span = document.createElement("span");
    span.className = "emotion";
    span.textContent = target;
    var holder = document.createElement("span");
    var pieces = q.split("{emotion}");
    for (var i = 0; i < pieces.length; i++) {
      holder.appendChild(document.createTextNode(pieces[i]));
      if (i < pieces.length - 1) { holder.appendChild(span.cloneNode(true)); }
    }
    return holder;
  }

  function setupConsent() {
    var pidInput = $("participant-input");
    var pid = params.get("participant") || "";
    if (platform === "prolific") { pid = params.get("PROLIFIC_PID") || pid; }
    if (platform === "mturk") { pid = params.get("workerId") || pid; }
    if (platform === "web" && !pid) { pid = randomId(); }
    pidInput.value = pid;
    if (platform !== "lab") { pidInput.readOnly = true; }
    var preview = platform === "mturk" &&
      (!state.assignmentId || state.assignmentId === "ASSIGNMENT_ID_NOT_AVAILABLE");
    $("preview-note").hidden = !preview;
    function update() {
      $("start-button").disabled = preview || !$("consent-check").checked || !pidInput.value.trim();
    }
    pidInput.addEventListener("input", update);
    $("consent-check").addEventListener("change", update);
    $("start-button").addEventListener("click", function () { start(pidInput.value.trim()); });
    update();
    try {
      var preview_set = chooseSet(pid);
      $("trial-count").textContent = "There are " + preview_set.trials.length + " trials.";
    } catch (e) {
      $("setup-error").hidden = false;
      $("setup-error").textContent = "This page is not set up correctly: " + e.message;
      $("start-button").disabled = true;
    }
    show("screen-consent");
  }

  function start(pid) {
    var chosen = chooseSet(pid);
    state.participant = pid;
    state.set = chosen.id;
    state.trials = chosen.trials;
    state.index = 0;
    state.answers = [];
    /* Warm the cache so later trials do not wait on the network. */
    for (var i = 0; i < state.trials.length; i++) {
      new Image().src = imageUrl(state.trials[i].left_image);
      new Image().src = imageUrl(state.trials[i].right_image);
    }
    show("screen-trial");
    showTrial();
  }

  function showTrial() {
    var t = state.trials[state.index];
    state.locked = true;
    $("pair").className = "waiting";
    $("choice-left").classList.remove("chosen");
    $("choice-right").classList.remove("chosen");
    var n = state.trials.length;
    $("progress-text").textContent = "Trial " + (state.index + 1) + " of " + n;
    $("progress-bar").style.width = (100 * state.index / n) + "%";
    var q = $("question");
    while (q.firstChild) { q.removeChild(q.firstChild); }
    q.appendChild(questionHtml(t.target));
    var pending = 2;
    function loaded() {
      pending -= 1;
      if (pending === 0) {
        /* Response time runs from the moment both images are on screen. */
        $("pair").className = "";
        state.shownAt = performance.now();
        state.shownWall = new Date().toISOString();
        state.locked = false;
      }
    }
    var l = $("img-left"), r = $("img-right");
    l.onload = loaded; r.onload = loaded;
    l.onerror = loaded; r.onerror = loaded;
    l.src = imageUrl(t.left_image);
    r.src = imageUrl(t.right_image);
  }

  function answer(side) {
    if (state.locked || state.index >= state.trials.length) { return; }
    state.locked = true;
    var t = state.trials[state.index];
    var rt = Math.round(performance.now() - state.shownAt);
    $("choice-" + side).classList.add("chosen");
    state.answers.push({ t: t, choice: side, rt: rt, shownAt: state.shownWall });
    state.index += 1;
    setTimeout(function () {
      if (state.index < state.trials.length) { showTrial(); } else { finish(); }
    }, 150);
  }

  function csvField(v) {
    var s = v === undefined || v === null ? "" : String(v);
    if (/[",\r\n]/.test(s)) { s = "\"" + s.replace(/"/g, "\"\"") + "\""; }
    return s;
  }

  function toCsv() {
    var lines = [CSV_COLUMNS.join(",")];
    for (var i = 0; i < state.answers.length; i++) {
      var a = state.answers[i], t = a.t;
      var row = [state.participant, venue, t.trial, t.kind, t.source_id, t.source_emotion, t.target,
        t.left_method, t.right_method, a.choice, t.correct_side, a.rt, state.set, platform,
        state.assignmentId, state.hitId, state.studyId, state.sessionId, t.left_image,
        t.right_image, a.shownAt, navigator.userAgent];
      lines.push(row.map(csvField).join(","));
    }
    return lines.join("\r\n") + "\r\n";
  }

  function pad3(n) { return ("00" + n).slice(-3); }

  function finish() {
    $("progress-bar").style.width = "100%";
    var csv = toCsv();
    window.EMOBENCH_RESULT_CSV = csv;
    var blob = new Blob([csv], { type: "text/csv" });
    var link = $("download-link");
    var fname = "responses_" + (state.participant || "anonymous").replace(/[^A-Za-z0-9_.-]/g, "_") + "_" + state.set + ".csv";
    link.href = URL.createObjectURL(blob);
    link.download = fname;
    show("screen-done");
    var postUrl = S.post_url || (INLINE && INLINE.post_url) || "";
    if (postUrl) {
      $("post-status").textContent = "Sending the responses...";
      fetch(postUrl, { method: "POST", headers: { "Content-Type": "text/csv" }, body: csv })
        .then(function (r) { $("post-status").textContent = r.ok ? "Responses sent." : "Sending failed (" + r.status + "); please download the file."; })
        .catch(function () { $("post-status").textContent = "Sending failed; please download the file."; });
    }
    if (platform === "prolific") {
      var code = S.completion_code || "";
      $("completion").hidden = !code;
      $("completion-code").textContent = code;
      if (code) {
        $("done-message").textContent = "You will be returned to Prolific in a few seconds.";
        setTimeout(function () {
          window.location.href = "https://app.prolific.com/submissions/complete?cc=" + encodeURIComponent(code);
        }, 3000);
      }
    } else if (platform === "mturk") {
      submitMturk();
    } else {
      /* In the lab and on a plain web page the file is offered right away. */
      link.click();
    }
  }

  function submitMturk() {
    var form = $("mturk-form");
    var base = params.get("turkSubmitTo");
    form.action = base ? base.replace(/\/$/, "") + "/mturk/externalSubmit"
      : ((INLINE && INLINE.submit_url) || S.mturk_submit_url || "https://www.mturk.com/mturk/externalSubmit");
    function field(name, value) {
      var i = document.createElement("input");
      i.type = "hidden"; i.name = name; i.value = value;
      form.appendChild(i);
    }
    field("assignmentId", state.assignmentId);
    for (var i = 0; i < state.answers.length; i++) {
      var a = state.answers[i];
      field("choice_" + pad3(a.t.trial), a.choice);
      field("rt_" + pad3(a.t.trial), a.rt);
    }
    $("done-message").textContent = "Submitting your answers to Mechanical Turk...";
    if (!params.get("emobench_no_submit")) { form.submit(); }
  }

  document.addEventListener("keydown", function (e) {
    if ($("screen-trial").hidden) { return; }
    var k = e.key;
    if (k === "f" || k === "F" || k === "ArrowLeft") { e.preventDefault(); answer("left"); }
    else if (k === "j" || k === "J" || k === "ArrowRight") { e.preventDefault(); answer("right"); }
  });
  $("choice-left").addEventListener("click", function () { answer("left"); });
  $("choice-right").addEventListener("click", function () { answer("right"); });
  /* Leaving mid-study loses answers: ask first. */
  window.addEventListener("beforeunload", function (e) {
    if (!$("screen-trial").hidden) { e.preventDefault(); e.returnValue = ""; }
  });

  window.EMOBENCH_PAGE = { state: state, toCsv: toCsv, decodeTrials: decodeTrials };
  setupConsent();
})();
