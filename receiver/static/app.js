// runware-archive: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  const shared = window.RunwareArchive = window.RunwareArchive || {};

  // Copy text: the Clipboard API where the page is a secure context (https, or the
  // loopback address), else execCommand("copy") on a hidden textarea. A promise, which
  // fails when the browser refuses both. The copy buttons here and the viewer use it.
  shared.copy = function (text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return byCommand(text); });
    }
    return byCommand(text);
  };

  function byCommand(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand && document.execCommand("copy");
    } catch (error) {
      ok = false;
    }
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  // Gallery: arrow keys move between cards, j / k to the next / previous, Enter opens
  // (the focused card is a link, so Enter is the browser's own).
  function galleryKeys() {
    const cards = Array.from(document.querySelectorAll("[data-gallery] [data-card]"));
    if (!cards.length) return;
    document.addEventListener("keydown", function (event) {
      if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
      if (event.target.closest("input, textarea, select, button, [contenteditable]")) return;
      const columns = columnCount(cards);
      const step = {ArrowRight: 1, j: 1, ArrowLeft: -1, k: -1,
                    ArrowDown: columns, ArrowUp: -columns}[event.key];
      if (!step) return;
      const current = cards.indexOf(document.activeElement);
      const next = current < 0 ? 0 : Math.min(cards.length - 1, Math.max(0, current + step));
      cards[next].focus();
      cards[next].scrollIntoView({block: "nearest"});
      event.preventDefault();
    });
  }

  function columnCount(cards) {
    const top = cards[0].getBoundingClientRect().top;
    const same = cards.findIndex(function (c) { return c.getBoundingClientRect().top !== top; });
    return same < 0 ? cards.length : same;
  }

  // Gallery filters apply as soon as one changes (without JavaScript: the Search button).
  function autosubmit() {
    document.querySelectorAll("[data-autosubmit]").forEach(function (box) {
      box.addEventListener("change", function () { box.closest("form").requestSubmit(); });
    });
  }

  // Task page: while results are still arriving (or being archived), poll the JSON API and
  // swap in the fresh page region when anything changed; stop once the page says it is done.
  function liveTask() {
    const region = document.getElementById("live");
    if (!region || region.dataset.live !== "1") return;
    let polls = 0;
    function schedule() {
      if (region.dataset.live === "1") window.setTimeout(tick, 1000);
    }
    function tick() {
      polls += 1;
      fetch(region.dataset.poll, {headers: {Accept: "application/json"}, credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (task) {
          if (!task) return null;
          const archived = task.results.filter(function (r) { return r.archived; }).length;
          const state = [task.status, task.results.length, archived].join("/");
          // Every fourth poll refreshes anyway: a parent's image may archive meanwhile.
          if (state !== region.dataset.state || polls % 4 === 0) return refresh(state);
          return null;
        })
        .catch(function () { return null; })
        .then(schedule);
    }
    function refresh(state) {
      return fetch(window.location.href, {credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) return;
          const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
          if (!fresh) return;
          region.replaceChildren.apply(region, Array.from(fresh.childNodes).map(function (node) {
            return document.importNode(node, true);
          }));
          region.dataset.live = fresh.dataset.live;
          region.dataset.state = state;
          showCopyButtons(region);
        });
    }
    schedule();
  }

  // Copy buttons are hidden without JavaScript; each copies the text of the element it names.
  function showCopyButtons(root) {
    root.querySelectorAll("[data-copy]").forEach(function (b) { b.hidden = false; });
  }

  // Copy buttons copy the text of the element they name (shared.copy); where the browser
  // refuses, that text is left selected for Ctrl+C. The button says which happened, then
  // reads as before.
  function copyText(button) {
    const source = document.querySelector(button.dataset.copy);
    if (!source) return;
    const done = function (label) {
      if (!button.dataset.label) button.dataset.label = button.innerHTML;
      button.textContent = label;
      window.clearTimeout(button.copyTimer);
      button.copyTimer = window.setTimeout(function () {
        button.innerHTML = button.dataset.label;
      }, 1500);
    };
    shared.copy(source.textContent.trim()).then(function () { done("Copied"); }, function () {
      selectText(source);
      done("Press Ctrl+C");
    });
  }

  function selectText(element) {
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // Forms with data-confirm ask first; yes marks the form confirmed, so the server does not
  // show its own confirmation page.
  function confirmForms() {
    document.addEventListener("submit", function (event) {
      const form = event.target.closest("form[data-confirm]");
      if (!form) return;
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        return;
      }
      const flag = form.querySelector("[data-confirmed]");
      if (flag) flag.value = "yes";
    });
  }

  // The submit form: the estimate follows the size, steps and count as they are typed, and
  // with a parent, fields that differ from it are marked.
  function composeForm() {
    const form = document.querySelector("form[data-estimate]");
    if (!form) return;
    const value = form.querySelector("[data-estimate-value]");
    const detail = form.querySelector("[data-estimate-detail]");
    let timer = null;
    form.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(updateEstimate, 250);
    });
    function updateEstimate() {
      const query = new URLSearchParams();
      ["width", "height", "steps", "numberResults"].forEach(function (name) {
        const field = form.elements[name];
        if (field && field.value.trim()) query.set(name, field.value.trim());
      });
      // A value the rules refuse gets no price: the answer's errors say why instead.
      fetch(form.dataset.estimate + "?" + query.toString(), {credentials: "same-origin"})
        .then(function (response) {
          return response.json().then(function (data) { return {ok: response.ok, data: data}; });
        })
        .then(function (answer) {
          const data = answer.data;
          if (answer.ok) {
            value.textContent = "$" + data.estimate.toFixed(4);
            if (detail) detail.textContent = "$" + data.perImage.toFixed(4) + " per image";
            return;
          }
          value.textContent = "—";
          if (detail) detail.textContent = "No estimate: " + (data.errors || []).map(function (e) {
            return (e.label || e.parameter) + " " + e.message;
          }).join("; ") + ".";
        })
        .catch(function () {
          value.textContent = "—";
          if (detail) detail.textContent = "";
        });
    }
    form.querySelectorAll(".field[data-parent]").forEach(function (field) {
      const input = field.querySelector("input, textarea, select");
      const mark = function () {
        field.classList.toggle("changed", input.value.trim() !== field.dataset.parent);
      };
      input.addEventListener("input", mark);
      input.addEventListener("change", mark);
      mark();
    });
  }

  // /read: a file dropped anywhere on the page (or picked) goes into the form's file input
  // and the form is sent, the same request the button sends without JavaScript.
  function dropRead() {
    const form = document.querySelector("[data-drop-read]");
    if (!form) return;
    const input = form.querySelector("input[type=file]");
    const zone = form.querySelector("[data-drop-zone]");
    let depth = 0;
    const send = function () { if (input.files.length) form.requestSubmit(); };
    input.addEventListener("change", send);
    document.addEventListener("dragenter", function (event) {
      event.preventDefault();
      depth += 1;
      zone.classList.add("dragging");
    });
    document.addEventListener("dragleave", function () {
      depth = Math.max(0, depth - 1);
      if (!depth) zone.classList.remove("dragging");
    });
    document.addEventListener("dragover", function (event) { event.preventDefault(); });
    document.addEventListener("drop", function (event) {
      event.preventDefault();
      depth = 0;
      zone.classList.remove("dragging");
      if (!event.dataTransfer || !event.dataTransfer.files.length) return;
      input.files = event.dataTransfer.files;
      send();
    });
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (button) copyText(button);
  });

  // A refused form: the summary of its errors takes the focus, so it is read first and
  // its links lead to each field.
  function focusErrorSummary() {
    const summary = document.querySelector("[data-error-summary]");
    if (summary) summary.focus();
  }

  // Phones: the gallery's filters fold under their summary unless one is in use, so the
  // images start on the first screen. Without this script they stay open everywhere.
  function foldFiltersOnPhones() {
    const fold = document.querySelector("[data-fold-on-phone='1']");
    if (fold && window.matchMedia("(max-width: 640px)").matches) fold.open = false;
  }

  document.addEventListener("DOMContentLoaded", function () {
    foldFiltersOnPhones();
    showCopyButtons(document);
    galleryKeys();
    autosubmit();
    liveTask();
    confirmForms();
    composeForm();
    focusErrorSummary();
    dropRead();
  });
})();
