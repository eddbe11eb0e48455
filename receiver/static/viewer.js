// runware-archive: the image viewer, a <dialog> over the task page and the gallery.
// Every link carrying data-view-src opens it; without this file those links open the
// file (task page) or the task (gallery) as before. Also the small helpers gallery.js
// shares: posting a form with the session's CSRF token, starring without a reload
// (copying is app.js's RunwareArchive.copy, which loads first).
(function () {
  "use strict";

  const shared = window.RunwareArchive = window.RunwareArchive || {};

  // The session's CSRF token, from any form of the page (every page with an action has one).
  shared.csrfToken = function () {
    const field = document.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  };

  // POST url-encoded fields with the CSRF token in its header; resolves to the JSON answer.
  shared.post = function (url, fields) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", body: new URLSearchParams(fields),
      headers: {"X-CSRF-Token": shared.csrfToken(), Accept: "application/json"},
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    });
  };

  // Star or unstar one image; every view of it (cards, viewer) hears "archive:starred".
  shared.star = function (image, starred) {
    return shared.post("/results/" + encodeURIComponent(image) + "/star",
                       {starred: starred ? "1" : "0"}).then(function (answer) {
      document.dispatchEvent(new CustomEvent("archive:starred",
                                             {detail: {image: image, starred: answer.starred}}));
      return answer.starred;
    });
  };


  function Viewer(dialog) {
    this.dialog = dialog;
    this.img = dialog.querySelector("[data-viewer-img]");
    this.stage = dialog.querySelector("[data-viewer-stage]");
    this.items = [];
    this.index = -1;
    this.opener = null;
    this.wire();
  }

  Viewer.prototype.part = function (name) {
    return this.dialog.querySelector("[data-viewer-" + name + "]");
  };

  Viewer.prototype.open = function (link) {
    this.items = Array.from(document.querySelectorAll("[data-view-src]"));
    this.opener = link;
    this.show(this.items.indexOf(link));
    if (!this.dialog.open) this.dialog.showModal();
    this.part("next").focus();
  };

  Viewer.prototype.show = function (index) {
    if (index < 0 || index >= this.items.length) return;
    this.index = index;
    const d = this.items[index].dataset;
    this.zoom(false);
    this.img.src = d.viewSrc;
    this.img.alt = d.viewPrompt || "";
    this.part("count").textContent = (index + 1) + " of " + this.items.length;
    this.part("prompt").textContent = d.viewPrompt || "";
    this.part("seed").textContent = d.viewSeed || "—";
    this.part("cost").textContent = d.viewCost || "—";
    this.part("size").textContent = d.viewSize || "";
    this.part("task").href = "/tasks/" + d.viewTask + "#image-" + d.viewImage;
    this.part("download").href = "/download/" + d.viewImage;
    this.part("rerun").action = "/results/" + d.viewImage + "/rerun";
    this.part("copy=seed").hidden = !d.viewSeed;
    this.part("prev").disabled = index === 0;
    this.part("next").disabled = index === this.items.length - 1;
    this.starred(d.viewStarred === "1");
  };

  Viewer.prototype.current = function () {
    return this.items[this.index];
  };

  Viewer.prototype.step = function (by) {
    this.show(Math.max(0, Math.min(this.items.length - 1, this.index + by)));
  };

  Viewer.prototype.starred = function (on) {
    const button = this.part("star");
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? "★ Starred" : "☆ Star";
  };

  // Actual size (scroll or drag to pan) or fit to the window.
  Viewer.prototype.zoom = function (on) {
    const zoomed = on === undefined ? !this.dialog.classList.contains("zoomed") : on;
    this.dialog.classList.toggle("zoomed", zoomed);
    const button = this.part("zoom");
    button.setAttribute("aria-pressed", zoomed ? "true" : "false");
    button.textContent = zoomed ? "Fit" : "100%";
    if (zoomed) {
      this.stage.scrollLeft = (this.stage.scrollWidth - this.stage.clientWidth) / 2;
      this.stage.scrollTop = (this.stage.scrollHeight - this.stage.clientHeight) / 2;
    }
  };

  Viewer.prototype.say = function (text) {
    this.part("status").textContent = text;
  };

  Viewer.prototype.wire = function () {
    const self = this;
    this.part("close").addEventListener("click", function () { self.dialog.close(); });
    this.part("prev").addEventListener("click", function () { self.step(-1); });
    this.part("next").addEventListener("click", function () { self.step(1); });
    this.part("zoom").addEventListener("click", function () { self.zoom(); });
    this.img.addEventListener("dblclick", function () { self.zoom(); });
    this.dialog.querySelectorAll("[data-viewer-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        const d = self.current().dataset;
        const text = button.dataset.viewerCopy === "seed" ? d.viewSeed : d.viewPrompt;
        shared.copy(text).then(function () { self.say("Copied the " + button.dataset.viewerCopy); },
                               function () { self.say("Copying was refused by the browser"); });
      });
    });
    this.part("star").addEventListener("click", function () {
      const d = self.current().dataset;
      shared.star(d.viewImage, d.viewStarred !== "1").catch(function () {
        self.say("Starring failed; reload the page and try again");
      });
    });
    document.addEventListener("archive:starred", function (event) {
      document.querySelectorAll("[data-view-image]").forEach(function (item) {
        if (item.dataset.viewImage === event.detail.image) {
          item.dataset.viewStarred = event.detail.starred ? "1" : "0";
        }
      });
      if (self.dialog.open && self.current().dataset.viewImage === event.detail.image) {
        self.starred(event.detail.starred);
      }
    });
    this.dialog.addEventListener("keydown", function (event) { self.key(event); });
    this.dialog.addEventListener("close", function () { self.closed(); });
    this.dialog.addEventListener("click", function (event) {
      if (event.target === self.dialog) self.dialog.close();  // the backdrop
    });
    this.swipe();
  };

  Viewer.prototype.key = function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.target.closest("input, textarea, select")) return;
    const action = {
      ArrowLeft: function (v) { v.step(-1); }, ArrowRight: function (v) { v.step(1); },
      Home: function (v) { v.show(0); }, End: function (v) { v.show(v.items.length - 1); },
      z: function (v) { v.zoom(); },
    }[event.key];
    if (!action) return;
    action(this);
    event.preventDefault();
    event.stopPropagation();
  };

  // Swipe left / right for next / previous; when zoomed, dragging pans instead.
  Viewer.prototype.swipe = function () {
    const self = this;
    let start = null;
    this.stage.addEventListener("pointerdown", function (event) {
      start = {x: event.clientX, y: event.clientY, left: self.stage.scrollLeft,
               top: self.stage.scrollTop};
      self.stage.setPointerCapture(event.pointerId);
    });
    this.stage.addEventListener("pointermove", function (event) {
      if (!start || !self.dialog.classList.contains("zoomed")) return;
      self.stage.scrollLeft = start.left - (event.clientX - start.x);
      self.stage.scrollTop = start.top - (event.clientY - start.y);
    });
    const end = function (event) {
      if (!start) return;
      const dx = event.clientX - start.x, dy = event.clientY - start.y;
      start = null;
      if (self.dialog.classList.contains("zoomed")) return;
      if (Math.abs(dx) > 50 && Math.abs(dx) > 2 * Math.abs(dy)) self.step(dx < 0 ? 1 : -1);
    };
    this.stage.addEventListener("pointerup", end);
    this.stage.addEventListener("pointercancel", function () { start = null; });
  };

  // Focus goes back to the link of the image last shown (the opener, unless one moved on).
  Viewer.prototype.closed = function () {
    this.zoom(false);
    const back = this.current();
    const target = back && back.isConnected ? back : this.opener;
    this.img.removeAttribute("src");
    if (target && target.isConnected) target.focus();
  };

  function start() {
    const dialog = document.querySelector("dialog[data-viewer]");
    if (!dialog || typeof dialog.showModal !== "function") return;
    const viewer = new Viewer(dialog);
    shared.viewer = viewer;
    document.addEventListener("click", function (event) {
      const link = event.target.closest("[data-view-src]");
      if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey
          || event.altKey) return;
      // In the gallery Enter (a click with no pointer, detail 0) still opens the task.
      if (event.detail === 0 && link.closest("[data-gallery]")) return;
      event.preventDefault();
      viewer.open(link);
    });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "v" || event.defaultPrevented || dialog.open) return;
      const link = document.activeElement && document.activeElement.closest("[data-view-src]");
      if (!link) return;
      event.preventDefault();
      viewer.open(link);
    });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
