// The ipywidgets HTML manager typesets widget labels with MathJax 2's MathJax.Hub.Queue whenever
// window.MathJax exists; the book serves MathJax 3, which has no Hub. This gives MathJax 3 that one
// call (typeset the element), so the widgets' labels typeset instead of throwing.
(function () {
  function shim() {
    var mj = window.MathJax;
    if (mj && !mj.Hub && typeof mj.typesetPromise === "function") {
      mj.Hub = {Queue: function (job) {
        var el = Array.isArray(job) ? job[2] : undefined;
        mj.typesetPromise(el ? [el] : undefined).catch(function () {});
      }};
    }
  }
  document.addEventListener("DOMContentLoaded", shim);
  window.addEventListener("load", shim);
})();
