/*
 * b2b listening quiz (chapter 7): "Which one is Bach?", in the static page.
 *
 * Every <div class="b2b-quiz"> written by b2b.listening.listening_quiz holds pairs of clips
 * (<li class="b2b-quiz-pair" data-b2b-key="...">, clips A and B). This script adds two buttons
 * to each pair ("A is Bach", "B is Bach"), and once every pair has a pick, a "Show my score"
 * button: it reveals each pair's answer, the score, and how a coin would have done (the
 * binomial probability of doing at least as well by guessing). Nothing comes from a network.
 *
 * Twins in Python (tests/test_listening.py checks they agree under Node.js):
 *   hash32()    b2b.listening.key_hash    (a pair's answer is the parity of its key's hash)
 *   pAtLeast()  b2b.listening.p_at_least  (the coin's chance of at least k of n)
 */
(function () {
  "use strict";

  /** Chris Wellons' lowbias32: a 32-bit integer hash. */
  function hash32(x) {
    x = x >>> 0;
    x = (x ^ (x >>> 16)) >>> 0;
    x = Math.imul(x, 0x7feb352d) >>> 0;
    x = (x ^ (x >>> 15)) >>> 0;
    x = Math.imul(x, 0x846ca68b) >>> 0;
    return (x ^ (x >>> 16)) >>> 0;
  }

  /** Probability that a fair coin gets at least k of n right: sum over i >= k of C(n, i) / 2^n. */
  function pAtLeast(k, n) {
    var c = 1, sum = 0; // c = C(n, i), exact in a double for n <= 50 (the most pairs a quiz holds)
    for (var i = 0; i <= n; i++) {
      if (i >= k) sum += c;
      c = c * (n - i) / (i + 1);
    }
    return sum / Math.pow(2, n);
  }

  function percent(p) {
    return 100 * p < 0.1 ? "less than 0.1%" : (100 * p).toFixed(1) + "%";
  }

  /** The result sentence for `right` of `n` pairs. */
  function verdict(right, n) {
    var p = pAtLeast(right, n);
    var text = "You picked Bach in " + right + " of " + n + " pairs. A coin picks Bach in " + n / 2 +
      " of " + n + " on average, and does at least as well as you (" + right + " or more of " + n +
      ") with probability " + percent(p) + ".";
    text += p <= 0.05
      ? " A coin rarely does that well (at most 1 time in 20): your ears tell Bach from this generator."
      : " A coin does that well often enough that this score alone does not show that you can tell them apart.";
    return { text: text, p: p };
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }

  function Quiz(root) {
    var self = this;
    this.root = root;
    this.pairs = Array.prototype.slice.call(root.querySelectorAll("li.b2b-quiz-pair"));
    this.answers = this.pairs.map(function (li) { return hash32(Number(li.getAttribute("data-b2b-key"))) & 1; });
    this.picks = this.pairs.map(function () { return null; });
    this.done = false;
    var note = root.querySelector(".b2b-quiz-nojs");
    if (note) note.parentNode.removeChild(note);
    this.pairs.forEach(function (li, i) {
      var choice = el("div", "b2b-quiz-choice");
      ["A", "B"].forEach(function (label, pick) {
        var b = el("button", "b2b-quiz-pick", label + " is Bach");
        b.type = "button";
        b.setAttribute("aria-pressed", "false");
        b.addEventListener("click", function () { self.pick(i, pick); });
        choice.appendChild(b);
      });
      li.appendChild(choice);
      li.appendChild(el("span", "b2b-quiz-reveal"));
    });
    var end = el("div", "b2b-quiz-end");
    this.progress = el("span", "b2b-quiz-progress");
    this.button = el("button", "b2b-quiz-score", "Show my score");
    this.button.type = "button";
    this.button.disabled = true;
    this.button.addEventListener("click", function () { self.score(); });
    this.result = el("p", "b2b-quiz-result");
    this.result.setAttribute("aria-live", "polite");
    end.appendChild(this.button);
    end.appendChild(this.progress);
    root.appendChild(end);
    root.appendChild(this.result);
    this.update();
    root.b2bQuiz = this;
  }

  Quiz.prototype.pick = function (i, pick) {
    if (this.done) return;
    this.picks[i] = pick;
    this.pairs[i].querySelectorAll("button.b2b-quiz-pick").forEach(function (b, j) {
      b.setAttribute("aria-pressed", j === pick ? "true" : "false");
    });
    this.update();
  };

  Quiz.prototype.answered = function () {
    return this.picks.filter(function (p) { return p !== null; }).length;
  };

  Quiz.prototype.update = function () {
    var n = this.pairs.length, a = this.answered();
    this.button.disabled = this.done || a < n;
    this.progress.textContent = this.done ? "" : a + " of " + n + " pairs answered";
  };

  Quiz.prototype.score = function () {
    if (this.done || this.answered() < this.pairs.length) return;
    var self = this, right = 0;
    this.done = true;
    this.pairs.forEach(function (li, i) {
      var ok = self.picks[i] === self.answers[i];
      if (ok) right++;
      var reveal = li.querySelector(".b2b-quiz-reveal");
      reveal.textContent = (ok ? "right: " : "wrong: ") + "Bach was " + "AB"[self.answers[i]];
      li.classList.add(ok ? "b2b-quiz-right" : "b2b-quiz-wrong");
      li.querySelectorAll("button.b2b-quiz-pick").forEach(function (b) { b.disabled = true; });
    });
    var v = verdict(right, this.pairs.length);
    this.right = right;
    this.p = v.p;
    this.result.textContent = v.text;
    this.update();
  };

  function init() {
    var found = document.querySelectorAll("div.b2b-quiz");
    window.b2bListening.quizzes = Array.prototype.map.call(found, function (root) { return new Quiz(root); });
  }

  var api = { hash32: hash32, pAtLeast: pAtLeast, verdict: verdict, quizzes: [] };
  if (typeof module !== "undefined" && module.exports) { module.exports = api; return; } // node (tests)
  window.b2bListening = api;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
