// runware-archive: the gallery's cards without reloads. Stars (every star form of a page),
// picking cards for the bulk bar (shift-click for a range, x or Space on a focused card,
// all on the page), Home / End, and the focus given back to the card that opened a task
// when Back returns. Without this file every form still posts and every link still opens.
(function () {
  "use strict";

  const shared = window.RunwareArchive || {};
  const FOCUS_KEY = "runware-archive:gallery-focus";

  // Every star button of an image follows its state, wherever it was changed.
  function showStar(image, starred) {
    document.querySelectorAll("form.star-form[action='/results/" + image + "/star']")
      .forEach(function (form) {
        const button = form.querySelector("button");
        const word = starred ? "Unstar" : "Star";
        form.querySelector("input[name=starred]").value = starred ? "0" : "1";
        button.classList.toggle("starred", starred);
        button.setAttribute("aria-pressed", starred ? "true" : "false");
        button.title = word + " this image";
        button.firstChild.textContent = starred ? "★" : "☆";
        const hidden = button.querySelector(".visually-hidden");
        if (hidden) hidden.textContent = " " + word;
      });
  }

  function stars() {
    document.addEventListener("archive:starred", function (event) {
      showStar(event.detail.image, event.detail.starred);
    });
    document.addEventListener("submit", function (event) {
      const form = event.target.closest("form.star-form");
      if (!form || !shared.star) return;
      event.preventDefault();
      const image = form.action.split("/results/")[1].split("/")[0];
      shared.star(image, form.querySelector("input[name=starred]").value === "1")
        .catch(function () { form.submit(); });  // the page's own way, with a reload
    });
  }

  function picks() {
    return Array.from(document.querySelectorAll("[data-pick]"));
  }

  function bulkBar() {
    const bar = document.querySelector("[data-bulk]");
    if (!bar) return;
    const all = bar.querySelector("[data-bulk-all]");
    const count = bar.querySelector("[data-bulk-count]");
    bar.querySelector("[data-bulk-all-label]").hidden = false;
    let last = null;
    function update() {
      const boxes = picks(), on = boxes.filter(function (b) { return b.checked; }).length;
      bar.classList.toggle("is-empty", on === 0);
      count.textContent = on ? on + " picked" : "Pick images with their boxes, or x on a card";
      all.checked = on > 0 && on === boxes.length;
      all.indeterminate = on > 0 && on < boxes.length;
    }
    document.addEventListener("click", function (event) {
      const box = event.target.closest("[data-pick]");
      if (!box) return;
      const boxes = picks();
      if (event.shiftKey && last !== null) {  // a range, from the last one clicked
        const [from, to] = [boxes.indexOf(last), boxes.indexOf(box)].sort(function (a, b) {
          return a - b;
        });
        boxes.slice(from, to + 1).forEach(function (b) { b.checked = box.checked; });
      }
      last = box;
      update();
    });
    all.addEventListener("change", function () {
      picks().forEach(function (b) { b.checked = all.checked; });
      update();
    });
    bar.addEventListener("submit", function (event) { bulkStar(event, bar); });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "x" && event.key !== " ") return;
      if (event.altKey || event.ctrlKey || event.metaKey || event.defaultPrevented) return;
      const card = document.activeElement && document.activeElement.closest("[data-card]");
      const box = card && card.closest("li").querySelector("[data-pick]");
      if (!box) return;
      event.preventDefault();  // Space would scroll the page
      box.checked = !box.checked;
      last = box;
      update();
    });
    update();
  }

  // Star and Unstar of the bar go by fetch; Delete and Download zip post the form.
  function bulkStar(event, bar) {
    const action = event.submitter && event.submitter.value;
    if ((action !== "star" && action !== "unstar") || !shared.post || bar.dataset.plain) return;
    event.preventDefault();
    const fields = new URLSearchParams();
    fields.set("action", action);
    picks().filter(function (b) { return b.checked; }).forEach(function (b) {
      fields.append("image", b.value);
    });
    shared.post(bar.getAttribute("action"), fields).then(function (answer) {
      answer.images.forEach(function (image) {
        document.dispatchEvent(new CustomEvent("archive:starred",
                                               {detail: {image: image, starred: answer.starred}}));
      });
    }, function () {
      bar.dataset.plain = "1";  // the form's own post, with a reload
      bar.requestSubmit(event.submitter);
    });
  }

  function cards() {
    return Array.from(document.querySelectorAll("[data-gallery] [data-card]"));
  }

  // Home and End: the first and the last card of the page.
  function homeEnd() {
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Home" && event.key !== "End") return;
      if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
      if (event.target.closest("input, textarea, select, [contenteditable], dialog")) return;
      const all = cards();
      if (!all.length) return;
      const card = event.key === "Home" ? all[0] : all[all.length - 1];
      card.focus();
      card.scrollIntoView({block: "nearest"});
      event.preventDefault();
    });
  }

  // The card that opened a task gets the focus back when Back returns to this page.
  function focusReturn() {
    document.addEventListener("click", function (event) {
      const card = event.target.closest("[data-gallery] [data-card]");
      if (!card || event.defaultPrevented) return;
      sessionStorage.setItem(FOCUS_KEY, JSON.stringify(
        {page: window.location.href, card: card.closest("li").id}));
    });
    window.addEventListener("pageshow", function () {
      let kept = null;
      try { kept = JSON.parse(sessionStorage.getItem(FOCUS_KEY) || "null"); } catch (e) { }
      if (!kept || kept.page !== window.location.href) return;
      const item = document.getElementById(kept.card);
      const card = item && item.querySelector("[data-card]");
      sessionStorage.removeItem(FOCUS_KEY);
      if (card) card.focus();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    stars();
    if (!document.querySelector("[data-gallery]")) return;
    bulkBar();
    homeEnd();
    focusReturn();
  });
})();
