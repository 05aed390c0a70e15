/*
 * b2b in-page generator (chapter 9): the exported generator runs in the reader's browser.
 *
 * Every <div class="b2b-generator"> on a page becomes a small instrument: a seed field and a
 * "New sample" button, a second seed and a slider that walks between the two noises (spherical
 * interpolation), a threshold slider, the pianoroll drawn on a canvas, and playback through the
 * Web Audio API. The model is `_static/b2b/generator.onnx` with its metadata
 * `_static/b2b/generator.json`, written at build time from data/pretrained/generator.pt by
 * b2b.web.export_onnx; it runs with the vendored onnxruntime-web (`_static/onnxruntime-web/`),
 * loaded on the first request. Nothing comes from a network.
 *
 * Twins in Python (tests/test_web.py checks they agree):
 *   noise()      b2b.web.portable_noise   (mulberry32 + Box-Muller: the page's seed 7 is Python's)
 *   toneInto()   b2b.audio._tone          (the numpy synthesizer, recipes from generator.json)
 *   drumInto()   b2b.audio._drum
 * The pianoroll of seed s at threshold t is `generator(portable_noise(s)) > t`, as in Python.
 */
(function () {
  "use strict";

  var SCRIPT = typeof document !== "undefined" && document.currentScript ? document.currentScript.src : "";
  var BASE = SCRIPT ? SCRIPT.replace(/[^/]*$/, "") : "_static/"; // the book's _static/ folder
  var SAMPLE_RATE = 22050, PEAK = 0.9, TAIL = 0.75, VELOCITY = 100;
  // seconds of sound (summed over notes, with their release) synthesized at most: about a second of work;
  // a low threshold can turn on tens of thousands of cells, which would take many seconds
  var MAX_NOTE_SECONDS = 1500;
  var COLORS = ["#444444", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39",
    "#7b4173", "#3182bd"];

  // ----------------------------------------------------------------- noise (b2b.web twin)
  function mulberry32(state) {
    var a = (state + 0x6D2B79F5) >>> 0;
    var t = Math.imul(a ^ (a >>> 15), a | 1) >>> 0;
    t = (((t + (Math.imul(t ^ (t >>> 7), t | 61) >>> 0)) >>> 0) ^ t) >>> 0;
    return [a, (t ^ (t >>> 14)) >>> 0];
  }

  /** Standard normal noise of one 32-bit seed: Float32Array(latent). */
  function noise(seed, latent) {
    var state = seed >>> 0, out = new Float32Array(latent), i = 0;
    while (i < latent) {
      var s1 = mulberry32(state); state = s1[0];
      var s2 = mulberry32(state); state = s2[0];
      var r = Math.sqrt(-2.0 * Math.log((s1[1] + 0.5) / 4294967296.0));
      var angle = 2.0 * Math.PI * ((s2[1] + 0.5) / 4294967296.0);
      out[i++] = r * Math.cos(angle);
      if (i < latent) out[i++] = r * Math.sin(angle);
    }
    return out;
  }

  /** Spherical interpolation between two noises (t in [0, 1]). */
  function slerp(a, b, t) {
    if (t <= 0) return a;
    if (t >= 1) return b;
    var dot = 0, na = 0, nb = 0, i;
    for (i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
    var omega = Math.acos(Math.max(-1, Math.min(1, dot / Math.sqrt(na * nb))));
    var out = new Float32Array(a.length);
    if (omega < 1e-6) { for (i = 0; i < a.length; i++) out[i] = (1 - t) * a[i] + t * b[i]; return out; }
    var wa = Math.sin((1 - t) * omega) / Math.sin(omega), wb = Math.sin(t * omega) / Math.sin(omega);
    for (i = 0; i < a.length; i++) out[i] = wa * a[i] + wb * b[i];
    return out;
  }

  // ----------------------------------------------------------------- pianoroll -> notes
  /** Notes of probabilities (17 * 64 * 72, track-major) above `threshold`: runs of on steps. */
  function notes(probs, meta, threshold) {
    var T = meta.shape[0], S = meta.shape[1], P = meta.shape[2], out = [];
    for (var k = 0; k < T; k++) {
      for (var p = 0; p < P; p++) {
        var start = -1;
        for (var s = 0; s <= S; s++) {
          var on = s < S && probs[(k * S + s) * P + p] > threshold;
          if (on && start < 0) start = s;
          if (!on && start >= 0) { out.push({ track: k, pitch: meta.lowest_pitch + p, start: start, end: s }); start = -1; }
        }
      }
    }
    return out;
  }

  // ----------------------------------------------------------------- synthesis (b2b.audio twins)
  function toneInto(buf, at, pitch, dur, recipe, sr) {
    // sum_k a_k fade_k(t) sin(2 pi k f0 t) * env(t), as b2b.audio._tone, with every exponential and
    // sine advanced by one multiplication per sample (the same values up to float rounding)
    var f0 = 440.0 * Math.pow(2.0, (pitch - 69) / 12.0);
    var n = Math.min(Math.round((dur + recipe.release) * sr), buf.length - at);
    var decay = recipe.decay, attack = Math.max(recipe.attack, 1.0 / sr), gain = (VELOCITY / 127.0) * 0.25;
    var parts = [];
    recipe.partials.forEach(function (amp, j) {
      var k = j + 1, w = 2 * Math.PI * k * f0 / sr;
      if (amp && k * f0 < 0.45 * sr) parts.push({ amp: amp, c: Math.cos(w), s: Math.sin(w), x: 1.0, y: 0.0,
        fade: decay === null ? 1.0 : Math.exp(-(k - 1) / (2.0 * decay * sr)) });
    });
    var held = Math.round(dur * sr), down = decay === null ? 1.0 : Math.exp(-1.0 / (decay * sr));
    var rel = Math.exp(-1.0 / (recipe.release / 4.0 * sr)), level = 1.0;
    for (var i = 0; i < n; i++) {
      var w = 0;
      for (var q = 0; q < parts.length; q++) {
        var p = parts[q], x = p.x;
        w += p.amp * p.y;                     // a_k fade_k sin(...), fade folded into the phasor
        p.x = (x * p.c - p.y * p.s) * p.fade; // rotate by 2 pi k f0 / sr and decay
        p.y = (x * p.s + p.y * p.c) * p.fade;
      }
      buf[at + i] += gain * Math.min(1.0, i / sr / attack) * level * w;
      level *= i >= held ? down * rel : down;
    }
  }

  function drumInto(buf, at, pitch, sr, rand) {
    var low = [35, 36, 41, 43, 45].indexOf(pitch) >= 0;
    var length = [49, 51, 52, 55, 57, 59].indexOf(pitch) >= 0 ? 0.6 : ([42, 44].indexOf(pitch) >= 0 ? 0.15 : 0.3);
    var n = Math.floor(length * sr), cutoff = low ? 200.0 : Math.min(8000.0, 100.0 * Math.pow(2.0, (pitch - 30) / 6.0));
    var a = Math.exp(-2 * Math.PI * cutoff / sr), burst = new Float32Array(n), y = 0, peak = 1e-12, i;
    for (i = 0; i < n; i++) { y = (1 - a) * rand() + a * y; burst[i] = y; peak = Math.max(peak, Math.abs(y)); }
    var phase = 0, gain = (VELOCITY / 127.0) * 0.4, m = Math.min(n, buf.length - at);
    for (i = 0; i < m; i++) {
      var t = i / sr, out = (burst[i] / peak) * Math.exp(-t / (length / 4.0));
      if (low) {
        var f = ([35, 36].indexOf(pitch) >= 0 ? 60.0 : 90.0 + 10 * (pitch - 41)) * (1 + 2 * Math.exp(-t / 0.02));
        phase += 2 * Math.PI * f / sr;
        out = 0.4 * out + Math.sin(phase) * Math.exp(-t / 0.12);
      }
      buf[at + i] += gain * out;
    }
  }

  /** Mono waveform (Float32Array) of the notes, peak-normalized to 0.9 like b2b.audio.render. */
  function synthesize(list, meta, sr) {
    var step = 60.0 / (meta.tempo * meta.steps_per_beat);
    var buf = new Float32Array(Math.ceil((meta.shape[1] * step + TAIL) * sr));
    var state = 12345, rand = function () { // normal noise for the drums (Box-Muller)
      var s1 = mulberry32(state); state = s1[0]; var s2 = mulberry32(state); state = s2[0];
      return Math.sqrt(-2 * Math.log((s1[1] + 0.5) / 4294967296)) * Math.cos(2 * Math.PI * (s2[1] + 0.5) / 4294967296);
    };
    list.forEach(function (note) {
      var at = Math.round(note.start * step * sr), track = meta.tracks[note.track];
      if (at >= buf.length) return;
      if (track.is_drum) drumInto(buf, at, note.pitch, sr, rand);
      else toneInto(buf, at, note.pitch, (note.end - note.start) * step, track, sr);
    });
    var peak = 0;
    for (var i = 0; i < buf.length; i++) peak = Math.max(peak, Math.abs(buf[i]));
    if (peak > 1e-5) for (var j = 0; j < buf.length; j++) buf[j] *= PEAK / peak;
    return buf;
  }

  // ----------------------------------------------------------------- drawing
  function draw(canvas, probs, meta, threshold) {
    var T = meta.shape[0], S = meta.shape[1], P = meta.shape[2];
    var ctx = canvas.getContext("2d"), cw = canvas.width / S, ch = canvas.height / P;
    ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = "#e4e4e4"; ctx.lineWidth = 1;
    for (var c = 0; c <= P; c += 12) { // a line at every C (MIDI 24, 36, ...)
      var yc = canvas.height - c * ch; ctx.beginPath(); ctx.moveTo(0, yc); ctx.lineTo(canvas.width, yc); ctx.stroke();
    }
    ctx.strokeStyle = "#bbbbbb";
    for (var b = 0; b <= S; b += 4 * meta.steps_per_beat) { // bar lines
      ctx.beginPath(); ctx.moveTo(b * cw, 0); ctx.lineTo(b * cw, canvas.height); ctx.stroke();
    }
    var counts = new Array(T).fill(0);
    for (var k = 0; k < T; k++) {
      ctx.fillStyle = COLORS[k % COLORS.length];
      for (var s = 0; s < S; s++) for (var p = 0; p < P; p++) {
        if (probs[(k * S + s) * P + p] > threshold) {
          ctx.fillRect(s * cw, canvas.height - (p + 1) * ch, Math.max(cw - 0.5, 1), Math.max(ch - 0.5, 1));
          counts[k]++;
        }
      }
    }
    return counts;
  }

  // ----------------------------------------------------------------- the model
  var runtime = null; // one promise per page: {ort, session, meta}
  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var el = document.createElement("script");
      el.src = src; el.onload = resolve;
      el.onerror = function () { reject(new Error("could not load " + src)); };
      document.head.appendChild(el);
    });
  }
  function loadRuntime(modelUrl) {
    if (runtime) return runtime;
    runtime = (window.ort ? Promise.resolve() : loadScript(BASE + "onnxruntime-web/ort.wasm.min.js")).then(function () {
      window.ort.env.wasm.wasmPaths = BASE + "onnxruntime-web/";
      window.ort.env.wasm.numThreads = 1; // no cross-origin isolation needed
      return Promise.all([
        fetch(modelUrl.replace(/\.onnx$/, ".json")).then(function (r) {
          if (!r.ok) throw new Error("could not load the model's metadata (" + r.status + ")");
          return r.json();
        }),
        window.ort.InferenceSession.create(modelUrl, { executionProviders: ["wasm"] })
      ]);
    }).then(function (both) { return { ort: window.ort, meta: both[0], session: both[1] }; });
    runtime.catch(function () { runtime = null; }); // a later click may try again
    return runtime;
  }

  // ----------------------------------------------------------------- the widget
  function el(tag, attrs, parent) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { if (k === "text") e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(e);
    return e;
  }

  function Widget(root) {
    this.root = root;
    this.modelUrl = root.getAttribute("data-model") || BASE + "b2b/generator.onnx";
    this.state = { probs: null, meta: null, notes: [], audio: null, timings: {}, seed: null };
    root.b2b = this.state;
    var self = this, row1 = el("div", { "class": "b2b-gen-row" }, root);
    el("label", { text: "Seed ", "for": "" }, row1);
    this.seed = el("input", { type: "number", min: "0", max: "4294967295", step: "1", value: root.getAttribute("data-seed") || "7", "class": "b2b-gen-seed", "aria-label": "seed" }, row1);
    this.newBtn = el("button", { type: "button", "class": "b2b-gen-new", text: "New sample" }, row1);
    this.genBtn = el("button", { type: "button", "class": "b2b-gen-generate", text: "Generate this seed" }, row1);
    this.playBtn = el("button", { type: "button", "class": "b2b-gen-play", text: "Play" }, row1);
    this.stopBtn = el("button", { type: "button", "class": "b2b-gen-stop", text: "Stop" }, row1);
    var row2 = el("div", { "class": "b2b-gen-row" }, root);
    el("label", { text: "Walk toward seed " }, row2);
    this.seedB = el("input", { type: "number", min: "0", max: "4294967295", step: "1", value: root.getAttribute("data-seed-b") || "8", "class": "b2b-gen-seed-b", "aria-label": "second seed" }, row2);
    this.mix = el("input", { type: "range", min: "0", max: "1", step: "0.05", value: "0", "class": "b2b-gen-mix", "aria-label": "interpolation toward the second seed" }, row2);
    this.mixOut = el("span", { "class": "b2b-gen-mix-value", text: "0.00" }, row2);
    var row3 = el("div", { "class": "b2b-gen-row" }, root);
    el("label", { text: "Threshold " }, row3);
    this.threshold = el("input", { type: "range", min: "0.01", max: "0.99", step: "0.005", value: "0.5", "class": "b2b-gen-threshold", "aria-label": "threshold" }, row3);
    this.thresholdOut = el("span", { "class": "b2b-gen-threshold-value", text: "" }, row3);
    this.canvas = el("canvas", { width: "640", height: "288", "class": "b2b-gen-roll", role: "img", "aria-label": "pianoroll of the generated window" }, root);
    this.legend = el("div", { "class": "b2b-gen-legend" }, root);
    this.status = el("div", { "class": "b2b-gen-status", "aria-live": "polite", text: "Press “New sample” to run the generator in this page." }, root);
    this.newBtn.addEventListener("click", function () {
      self.seed.value = String(Math.floor(Math.random() * 4294967296));
      self.mix.value = "0";
      self.generate(true);
    });
    this.genBtn.addEventListener("click", function () { self.generate(true); });
    this.playBtn.addEventListener("click", function () { self.play(performance.now()); });
    this.stopBtn.addEventListener("click", function () { self.stop(); });
    this.mix.addEventListener("change", function () { self.generate(false); });
    this.mix.addEventListener("input", function () { self.mixOut.textContent = Number(self.mix.value).toFixed(2); });
    this.thr = null; // the threshold in use: the calibrated one until the slider moves
    this.threshold.addEventListener("input", function () { self.thr = Number(self.threshold.value); self.redraw(); });
  }

  Widget.prototype.say = function (text) { this.status.textContent = text; };

  Widget.prototype.generate = function (andPlay) {
    var self = this, t0 = performance.now(), seed = Number(this.seed.value), seedB = Number(this.seedB.value);
    if (!Number.isInteger(seed) || seed < 0 || seed > 4294967295 || !Number.isInteger(seedB) || seedB < 0 || seedB > 4294967295) {
      this.say("A seed is a whole number from 0 to 4294967295."); return Promise.resolve();
    }
    this.say("Loading the generator…");
    return loadRuntime(this.modelUrl).then(function (rt) {
      var meta = rt.meta, t1 = performance.now();
      if (self.state.meta === null) { self.threshold.value = String(meta.threshold); self.thr = meta.threshold; }
      self.state.meta = meta;
      var mix = Number(self.mix.value);
      self.mixOut.textContent = mix.toFixed(2);
      var z = slerp(noise(seed, meta.latent), noise(seedB, meta.latent), mix);
      var feeds = {}; feeds[rt.session.inputNames[0]] = new rt.ort.Tensor("float32", z, [1, meta.latent]);
      return rt.session.run(feeds).then(function (out) {
        var t2 = performance.now();
        self.state.probs = out[rt.session.outputNames[0]].data;
        self.state.seed = seed; self.state.seedB = seedB; self.state.mix = mix;
        self.state.timings = { load_ms: t1 - t0, model_ms: t2 - t1 };
        self.redraw();
        if (andPlay) return self.play(t0);
      });
    }).catch(function (e) { self.say("The generator could not run here: " + e.message); self.state.error = String(e.message); });
  };

  Widget.prototype.redraw = function () {
    var st = this.state;
    if (!st.probs) { this.thresholdOut.textContent = Number(this.threshold.value).toFixed(2); return; }
    var thr = this.thr === null ? Number(this.threshold.value) : this.thr, meta = st.meta;
    this.thresholdOut.textContent = thr.toFixed(3) + (Math.abs(thr - meta.threshold) < 0.0025 ? " (calibrated)" : "");
    var counts = draw(this.canvas, st.probs, meta, thr);
    st.threshold = thr;
    st.notes = notes(st.probs, meta, thr);
    st.audio = null; // the sound follows the pianoroll
    this.legend.textContent = "";
    var self = this;
    counts.forEach(function (c, k) {
      if (!c) return;
      var item = el("span", { "class": "b2b-gen-track" }, self.legend);
      el("span", { "class": "b2b-gen-swatch", style: "background:" + COLORS[k % COLORS.length] }, item);
      item.appendChild(document.createTextNode(meta.tracks[k].name + " (" + c + ")"));
    });
    var tracks = counts.filter(function (c) { return c > 0; }).length;
    var label = st.mix > 0 ? "seeds " + st.seed + " → " + st.seedB + " at " + st.mix.toFixed(2) : "seed " + st.seed;
    this.say(label + ": " + st.notes.length + " notes on " + tracks + " track" + (tracks === 1 ? "" : "s") +
      " at threshold " + thr.toFixed(3) + (st.notes.length ? "" : " (silent: lower the threshold)"));
  };

  Widget.prototype.stop = function () {
    if (this.source) { try { this.source.stop(); } catch (e) { /* already stopped */ } this.source = null; }
  };

  Widget.prototype.play = function (clickTime) {
    var st = this.state;
    if (!st.probs) return this.generate(true);
    this.stop();
    var step = 60.0 / (st.meta.tempo * st.meta.steps_per_beat), load = 0;
    st.notes.forEach(function (n) { load += (n.end - n.start) * step + st.meta.tracks[n.track].release; });
    if (load > MAX_NOTE_SECONDS) {
      st.audio = null; st.tooDense = true;
      this.say(st.notes.length + " notes, " + Math.round(load) + " s of sound in all: too dense to play here (at most " +
               MAX_NOTE_SECONDS + " s); raise the threshold.");
      return Promise.resolve();
    }
    st.tooDense = false;
    var t0 = performance.now(), wave = synthesize(st.notes, st.meta, SAMPLE_RATE), t1 = performance.now();
    var Ctx = window.AudioContext || window.webkitAudioContext;
    this.ctx = this.ctx || new Ctx();
    var buffer = this.ctx.createBuffer(1, wave.length, SAMPLE_RATE);
    buffer.copyToChannel(wave, 0);
    var rms = 0;
    for (var i = 0; i < wave.length; i++) rms += wave[i] * wave[i];
    st.audio = { duration: buffer.duration, rms: Math.sqrt(rms / wave.length), sampleRate: SAMPLE_RATE };
    var src = this.ctx.createBufferSource();
    src.buffer = buffer; src.connect(this.ctx.destination);
    var self = this;
    return this.ctx.resume().then(function () {
      src.start();
      self.source = src;
      st.timings.synth_ms = t1 - t0;
      st.timings.click_to_sound_ms = performance.now() - clickTime;
      st.playing = true;
      src.onended = function () { if (self.source === src) { st.playing = false; self.source = null; } };
    });
  };

  function init() {
    var found = document.querySelectorAll("div.b2b-generator");
    window.b2bGenerator.widgets = Array.prototype.map.call(found, function (root) { return new Widget(root); });
  }

  var api = { noise: noise, slerp: slerp, notes: notes, synthesize: synthesize, mulberry32: mulberry32, widgets: [] };
  if (typeof module !== "undefined" && module.exports) { module.exports = api; return; } // node (tests)
  window.b2bGenerator = api;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
