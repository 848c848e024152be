// MathJax configuration for the site (loaded before the vendored ./mathjax/tex-chtml-full.js, at the
// end of the page body, so the page is there to look at).
// Guides and API pages: pymdownx.arithmatex (generic) wraps maths in class "arithmatex" as \( \) and \[ \];
// only those are typeset, so a "$" in prose is never read as maths.
// Tutorials (mkdocs-jupyter, inside .jupyter-wrapper): Markdown cells keep $...$ and $$...$$; the whole
// page is typeset (code cells and outputs are <pre>, which MathJax skips).
const notebookPage = document.querySelector(".jupyter-wrapper") !== null;
window.MathJax = {
  tex: {
    inlineMath: notebookPage ? [["$", "$"], ["\\(", "\\)"]] : [["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: notebookPage ? {} : { ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex" },
};

// mkdocs-material can load pages without a full reload (navigation.instant): typeset each new page.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
