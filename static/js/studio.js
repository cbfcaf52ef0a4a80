/* Image Studio: behaviour shared by the pages with job cards and images.
   Plain JavaScript, no dependencies besides htmx. Everything works without it, less smoothly. */
(function () {
  "use strict";

  /* --- elapsed timers on active job cards (the sync gateway gives no progress) --- */
  function formatDuration(seconds) {
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    var rest = seconds % 60;
    if (minutes < 60) return rest ? minutes + " min " + rest + " s" : minutes + " min";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function startTimers(root) {
    (root || document).querySelectorAll("[data-elapsed]").forEach(function (el) {
      if (el.dataset.timerStarted) return;
      el.dataset.timerStarted = "1";
      el.dataset.start = String(Date.now() - Number(el.dataset.elapsed) * 1000);
    });
  }

  setInterval(function () {
    document.querySelectorAll("[data-elapsed][data-start]").forEach(function (el) {
      var seconds = Math.max(0, Math.round((Date.now() - Number(el.dataset.start)) / 1000));
      el.textContent = formatDuration(seconds);
    });
  }, 1000);

  // Without the clipboard API (plain http): a hidden textarea and the older copy command.
  function copyByHand(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }

  /* --- lightbox: a <dialog> filled by htmx --- */
  function lightbox() { return document.getElementById("lightbox"); }

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-lightbox]");
    if (opener && lightbox() && !lightbox().open) {
      var body = document.getElementById("lightbox-body");
      if (body) body.innerHTML = '<p class="muted lightbox-loading"><span class="spinner" aria-hidden="true"></span> Loading…</p>';
      lightbox().showModal();
    }
    var closer = event.target.closest("[data-close]");
    if (closer && lightbox() && lightbox().open) {
      event.preventDefault();
      lightbox().close();
    }
    // A click on the backdrop (the dialog itself, outside its content) closes it.
    if (event.target === lightbox()) lightbox().close();

    var copyText = event.target.closest("[data-copy-text]");
    if (copyText) {
      var source = document.querySelector(copyText.dataset.copyText);
      var text = source ? source.textContent.trim() : "";
      var copied = function () { copyText.textContent = "Copied"; setTimeout(function () { copyText.textContent = "Copy prompt"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(copied, function () { copyByHand(text); copied(); });
      } else {
        copyByHand(text);
        copied();
      }
    }

    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var input = document.querySelector(copy.dataset.copy);
      if (input) {
        input.select();
        var done = function () { copy.textContent = "Copied"; setTimeout(function () { copy.textContent = "Copy"; }, 1500); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
        } else {
          document.execCommand("copy");
          done();
        }
      }
    }
  });

  /* --- pop-ups (details.popover): one open at a time, Esc closes --- */
  document.addEventListener("toggle", function (event) {
    var opened = event.target;
    if (!opened.matches || !opened.matches("details.popover, details.user-menu") || !opened.open) return;
    document.querySelectorAll("details.popover[open], details.user-menu[open]").forEach(function (other) {
      if (other !== opened) other.open = false;
    });
  }, true);

  document.addEventListener("click", function (event) {
    // A click outside every open pop-up closes them.
    if (event.target.closest("details.popover, details.user-menu")) return;
    document.querySelectorAll("details.popover[open], details.user-menu[open]").forEach(function (open) { open.open = false; });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector("details.popover[open], details.user-menu[open]");
    if (!open) return;
    open.open = false;
    var summary = open.querySelector("summary");
    if (summary) summary.focus();
  });

  /* --- a favourite's star on its tile follows the lightbox at once --- */
  document.body.addEventListener("favourite-changed", function (event) {
    var tile = event.detail && document.getElementById("tile-" + event.detail.id);
    var star = tile && tile.querySelector(".tile-fav");
    if (star) star.hidden = !event.detail.on;
  });

  /* --- gallery selection: click, Shift-click for a range, Space on a focused box --- */
  var lastPicked = null;
  function selectionBoxes() { return Array.prototype.slice.call(document.querySelectorAll("[data-select]")); }
  function showSelection() {
    var bar = document.querySelector("[data-selection]");
    if (!bar) return;
    var count = selectionBoxes().filter(function (box) { return box.checked; }).length;
    var label = bar.querySelector("[data-selected-count]");
    if (label) label.textContent = count ? count + " selected" : "Select images with their boxes (Shift-click for a range)";
    bar.classList.toggle("has-selection", count > 0);
    bar.querySelectorAll("button[data-needs-selection]").forEach(function (button) { button.disabled = count === 0; });
  }
  document.addEventListener("click", function (event) {
    var box = event.target.closest("[data-select]");
    if (!box) return;
    if (event.shiftKey && lastPicked && lastPicked !== box) {
      var boxes = selectionBoxes();
      var from = boxes.indexOf(lastPicked);
      var to = boxes.indexOf(box);
      if (from >= 0 && to >= 0) {
        boxes.slice(Math.min(from, to), Math.max(from, to) + 1).forEach(function (each) { each.checked = box.checked; });
      }
    }
    lastPicked = box;
    showSelection();
  });
  document.addEventListener("htmx:afterSettle", showSelection);
  document.addEventListener("DOMContentLoaded", showSelection);

  document.addEventListener("keydown", function (event) {
    var box = lightbox();
    if (!box || !box.open) return;
    if (event.target.closest("input, textarea, select")) return;
    var which = event.key === "ArrowLeft" ? "prev" : event.key === "ArrowRight" ? "next" : null;
    if (!which) return;
    var link = box.querySelector('[data-nav="' + which + '"]');
    if (!link) return;
    event.preventDefault();
    // Not link.click(): htmx binds its click handler to swapped-in links only when the swap
    // settles, a timer (defaultSettleDelay) after the new image is already on screen. A key
    // pressed in that gap clicked a plain <a href> and the whole page went to /gallery/<id>/,
    // more often the busier the machine. Asking htmx for the request directly does not depend
    // on whether the link has been processed yet.
    if (window.htmx) {
      window.htmx.ajax("GET", link.getAttribute("hx-get"), {
        source: link, target: "#lightbox-body", swap: "innerHTML",
      });
    } else {
      window.location.assign(link.href);
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    startTimers(event.target);
    var box = lightbox();
    if (box && event.target.id === "lightbox-body" && !box.open) box.showModal();
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) { startTimers(event.target); });

  // An image deleted from the lightbox leaves the grid and any job card showing it.
  document.body.addEventListener("image-deleted", function (event) {
    var id = event.detail && event.detail.id;
    if (!id) return;
    var tile = document.getElementById("tile-" + id);
    if (tile) tile.remove();
    document.querySelectorAll('.thumb[data-image-id="' + id + '"]').forEach(function (thumb) {
      thumb.outerHTML = '<span class="thumb placeholder" aria-hidden="true"></span>';
    });
  });

  document.addEventListener("DOMContentLoaded", function () { startTimers(document); });
  if (document.readyState !== "loading") startTimers(document);
})();
