/* Image Studio create page: uploads (drop, pick, paste), chips, region boxes, prompt counter,
   seed, palette editor. The server checks everything again; this only makes it pleasant. */
(function () {
  "use strict";

  function form() { return document.getElementById("create-form"); }
  function csrf() {
    var input = document.querySelector("[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  function fire(el, name) { el.dispatchEvent(new Event(name, { bubbles: true })); }

  /* --- chips: numbering, removal, "image N" into the prompt --- */
  function renumber() {
    document.querySelectorAll("#chips [data-chip]:not([data-problem])").forEach(function (chip, index) {
      chip.querySelectorAll("[data-chip-label]").forEach(function (label) { label.textContent = "image " + (index + 1); });
      chip.dataset.number = String(index + 1);
    });
  }

  function insertAtCursor(textarea, text) {
    var start = textarea.selectionStart != null ? textarea.selectionStart : textarea.value.length;
    var end = textarea.selectionEnd != null ? textarea.selectionEnd : start;
    var before = textarea.value.slice(0, start);
    var after = textarea.value.slice(end);
    var padBefore = before && !/\s$/.test(before) ? " " : "";
    var padAfter = after && !/^\s/.test(after) ? " " : "";
    textarea.value = before + padBefore + text + padAfter + after;
    var caret = (before + padBefore + text + padAfter).length;
    textarea.focus();
    textarea.setSelectionRange(caret, caret);
    fire(textarea, "input");
  }

  // Remember where the caret was in the prompt: clicking a chip button moves focus away.
  var lastCaret = null;
  document.addEventListener("selectionchange", function () {
    var active = document.activeElement;
    if (active && active.id === "id_prompt") lastCaret = [active.selectionStart, active.selectionEnd];
  });

  document.addEventListener("click", function (event) {
    var remove = event.target.closest("[data-remove-chip]");
    if (remove) {
      var chip = remove.closest("[data-chip]");
      chip.remove();
      renumber();
      if (form()) fire(form(), "change");
      return;
    }
    var insert = event.target.closest("[data-insert-ref]");
    if (insert) {
      var prompt = document.getElementById("id_prompt");
      var number = insert.closest("[data-chip]").dataset.number || "1";
      if (prompt) {
        if (lastCaret) prompt.setSelectionRange(lastCaret[0], lastCaret[1]);
        insertAtCursor(prompt, "image " + number);
      }
      return;
    }
    var clear = event.target.closest("[data-clear-boxes]");
    if (clear) {
      var board = clear.closest("[data-chip]");
      setBoxes(board, []);
      return;
    }
    var random = event.target.closest("[data-random-seed]");
    if (random) {
      var seed = document.getElementById("id_seed");
      var max = Number(random.dataset.max);  // the catalog's largest seed
      var values = new Uint32Array(1);
      window.crypto.getRandomValues(values);
      seed.value = String(values[0] % (max + 1));
      fire(seed, "change");
      return;
    }
    paletteClick(event);
  });

  /* --- prompt counters --- */
  function updateCounter(counter) {
    var field = document.getElementById(counter.dataset.counterFor);
    if (!field) return;
    var count = field.value.length;
    var max = Number(counter.dataset.max);
    counter.querySelector("[data-count]").textContent = String(count);
    counter.classList.toggle("over", max && count > max);
    counter.classList.toggle("near", max && count <= max && count > max * 0.9);
  }
  document.addEventListener("input", function (event) {
    if (event.target.id) {
      var counter = document.querySelector('[data-counter-for="' + event.target.id + '"]');
      if (counter) updateCounter(counter);
    }
    if (event.target.closest("[data-palette]")) updatePaletteTotal();
  });

  /* --- uploads: drop, pick, paste --- */
  function chipsBox() { return document.getElementById("chips"); }

  function uploadFiles(files) {
    var box = chipsBox();
    if (!box || !files.length) return;
    Array.prototype.forEach.call(files, function (file) { uploadOne(box, file); });
  }

  function uploadOne(box, file) {
    var dropzone = document.querySelector("[data-dropzone]");
    var placeholder = document.createElement("div");
    placeholder.className = "chip is-uploading";
    placeholder.setAttribute("data-chip", "");
    placeholder.setAttribute("data-problem", "");
    placeholder.innerHTML = '<div class="chip-media shimmer"></div><div class="chip-body"><p class="small"><span class="spinner" aria-hidden="true"></span> Uploading <span class="chip-name"></span>…</p></div>';
    placeholder.querySelector(".chip-name").textContent = file.name || "pasted image";
    box.appendChild(placeholder);

    var data = new FormData();
    data.append("file", file, file.name || "pasted.png");
    var offer = document.getElementById("id_offer");
    var mode = document.querySelector("[name=mode]:checked");
    if (offer) data.append("offer", offer.value);
    if (mode) data.append("mode", mode.value);
    fetch(dropzone.dataset.uploadUrl, {
      method: "POST",
      body: data,
      headers: { "X-CSRFToken": csrf(), "HX-Request": "true" },
      credentials: "same-origin",
    }).then(function (response) {
      return response.text().then(function (html) { return { ok: response.ok, html: html }; });
    }).then(function (result) {
      var holder = document.createElement("div");
      holder.innerHTML = result.html.trim();
      var chip = holder.firstElementChild;
      if (!chip) throw new Error("empty answer");
      placeholder.replaceWith(chip);
      if (window.htmx) window.htmx.process(chip);
      initBoards(chip);
      renumber();
      if (form()) fire(form(), "change");
    }).catch(function () {
      placeholder.classList.add("has-error");
      placeholder.querySelector(".chip-body").innerHTML = '<p class="field-error">The upload failed: check your connection and try again.</p><button type="button" class="button small" data-remove-chip>Dismiss</button>';
    });
  }

  // Capture phase: take the files before htmx's own "change" listeners see the input.
  document.addEventListener("change", function (event) {
    if (event.target.id === "id_files" && event.target.files.length) {
      var files = Array.prototype.slice.call(event.target.files);
      event.target.value = "";
      uploadFiles(files);
    }
  }, true);

  document.addEventListener("dragover", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.add("is-over");
  });
  document.addEventListener("dragleave", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (zone) zone.classList.remove("is-over");
  });
  document.addEventListener("drop", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.remove("is-over");
    uploadFiles(event.dataTransfer.files);
  });
  document.addEventListener("paste", function (event) {
    if (!chipsBox() || !event.clipboardData) return;
    var files = Array.prototype.filter.call(event.clipboardData.files || [], function (f) { return f.type.indexOf("image/") === 0; });
    if (!files.length) return;
    event.preventDefault();
    uploadFiles(files);
  });

  /* --- region boxes: drawn with pointer events, stored in the image's own pixels --- */
  // How many boxes an image takes comes from the catalog, rendered on the chips' container.
  function maxBoxes(chip) {
    var holder = chip.closest("[data-max-boxes]");
    return holder ? Number(holder.dataset.maxBoxes) : 0;
  }

  function readBoxes(chip) {
    var input = chip.querySelector("[data-boxes]");
    try { return JSON.parse(input.value || "[]") || []; } catch (e) { return []; }
  }

  function setBoxes(chip, boxes) {
    chip.querySelector("[data-boxes]").value = JSON.stringify(boxes);
    drawBoxes(chip);
  }

  function drawBoxes(chip) {
    var board = chip.querySelector("[data-board]");
    if (!board) return;
    board.querySelectorAll(".box").forEach(function (el) { el.remove(); });
    var width = Number(board.dataset.width), height = Number(board.dataset.height);
    readBoxes(chip).forEach(function (box, index) {
      var el = document.createElement("div");
      el.className = "box";
      el.style.left = (box[0] / width * 100) + "%";
      el.style.top = (box[1] / height * 100) + "%";
      el.style.width = ((box[2] - box[0]) / width * 100) + "%";
      el.style.height = ((box[3] - box[1]) / height * 100) + "%";
      el.innerHTML = '<span class="box-label"></span><button type="button" class="box-remove" aria-label="Remove box">✕</button>';
      el.querySelector(".box-label").textContent = String(index + 1);
      el.querySelector(".box-remove").addEventListener("pointerdown", function (e) { e.stopPropagation(); });
      el.querySelector(".box-remove").addEventListener("click", function (e) {
        e.preventDefault();
        var boxes = readBoxes(chip);
        boxes.splice(index, 1);
        setBoxes(chip, boxes);
      });
      board.appendChild(el);
    });
    board.classList.toggle("is-full", readBoxes(chip).length >= maxBoxes(chip));
  }

  function toImage(board, event) {
    var rect = board.getBoundingClientRect();
    var width = Number(board.dataset.width), height = Number(board.dataset.height);
    var x = Math.min(Math.max(event.clientX - rect.left, 0), rect.width);
    var y = Math.min(Math.max(event.clientY - rect.top, 0), rect.height);
    return [Math.round(x / rect.width * width), Math.round(y / rect.height * height)];
  }

  // A board takes its image's proportions (.boards .chip-media in studio.css). Set here, not in a
  // style attribute, which the Content-Security-Policy blocks; setting them through the DOM it allows.
  function sizeBoards(root) {
    (root || document).querySelectorAll("[data-board]").forEach(function (board) {
      board.style.setProperty("--w", board.dataset.width);
      board.style.setProperty("--h", board.dataset.height);
    });
  }

  function initBoards(root) {
    sizeBoards(root);
    (root || document).querySelectorAll("[data-board]").forEach(function (board) {
      if (board.dataset.ready) return;
      board.dataset.ready = "1";
      var chip = board.closest("[data-chip]");
      var start = null, live = null;
      drawBoxes(chip);
      board.addEventListener("pointerdown", function (event) {
        if (event.button !== 0 && event.pointerType === "mouse") return;
        if (readBoxes(chip).length >= maxBoxes(chip)) {
          board.classList.add("shake");
          setTimeout(function () { board.classList.remove("shake"); }, 400);
          return;
        }
        event.preventDefault();
        board.setPointerCapture(event.pointerId);
        start = toImage(board, event);
        live = document.createElement("div");
        live.className = "box drawing";
        board.appendChild(live);
      });
      board.addEventListener("pointermove", function (event) {
        if (!start) return;
        var point = toImage(board, event);
        var width = Number(board.dataset.width), height = Number(board.dataset.height);
        var x1 = Math.min(start[0], point[0]), y1 = Math.min(start[1], point[1]);
        var x2 = Math.max(start[0], point[0]), y2 = Math.max(start[1], point[1]);
        live.style.left = (x1 / width * 100) + "%";
        live.style.top = (y1 / height * 100) + "%";
        live.style.width = ((x2 - x1) / width * 100) + "%";
        live.style.height = ((y2 - y1) / height * 100) + "%";
      });
      function finish(event) {
        if (!start) return;
        var point = toImage(board, event);
        var box = [Math.min(start[0], point[0]), Math.min(start[1], point[1]),
          Math.max(start[0], point[0]), Math.max(start[1], point[1])];
        start = null;
        if (live) live.remove();
        live = null;
        // A tap is not a box: ignore anything under 1% of the image's side.
        var width = Number(board.dataset.width), height = Number(board.dataset.height);
        if (box[2] - box[0] < width / 100 || box[3] - box[1] < height / 100) return;
        var boxes = readBoxes(chip);
        boxes.push(box);
        setBoxes(chip, boxes.slice(0, maxBoxes(chip)));
      }
      board.addEventListener("pointerup", finish);
      board.addEventListener("pointercancel", function () {
        start = null;
        if (live) live.remove();
        live = null;
      });
    });
  }

  /* --- palette editor --- */
  function paletteBox() { return document.querySelector("[data-palette]"); }

  function ratioInputs() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-palette] [name=palette_ratio]"));
  }

  function updatePaletteTotal() {
    var box = paletteBox();
    if (!box) return;
    var inputs = ratioInputs();
    var row = box.querySelector("[data-palette-total-row]");
    row.hidden = inputs.length === 0;
    var hundredths = inputs.reduce(function (sum, input) { return sum + Math.round((parseFloat(input.value) || 0) * 100); }, 0);
    var output = box.querySelector("[data-palette-total]");
    output.textContent = (hundredths / 100).toFixed(2) + "%";
    row.classList.toggle("bad", hundredths !== 10000);
    var count = inputs.length;
    box.querySelector("[data-add-swatch]").disabled = count >= Number(box.dataset.max);
  }

  // Balancing to exactly 100.00% is the server's (the same rounding the gateways' palettes get):
  // the Balance button posts the palette and gets the editor back.
  function balance() {
    var button = document.querySelector("[data-palette] [data-balance]");
    if (button) button.click();
  }

  function paletteClick(event) {
    var box = paletteBox();
    if (!box) return;
    if (event.target.closest("[data-add-swatch]")) {
      var list = box.querySelector("[data-swatches]");
      var template = box.querySelector("[data-swatch-template]");
      var count = list.querySelectorAll("[data-swatch]").length;
      if (count >= Number(box.dataset.max)) return;
      list.appendChild(template.content.cloneNode(true));
      var added = list.lastElementChild;
      // A new colour gets a random hue so it is visibly a different swatch.
      var hue = Math.floor(Math.random() * 360);
      added.querySelector("[type=color]").value = hslToHex(hue, 55, 60);
      if (count === 0) {
        // Starting a palette: three colours, as the gateways need at least three.
        list.appendChild(template.content.cloneNode(true));
        list.appendChild(template.content.cloneNode(true));
        list.children[1].querySelector("[type=color]").value = hslToHex((hue + 120) % 360, 55, 60);
        list.children[2].querySelector("[type=color]").value = hslToHex((hue + 240) % 360, 55, 60);
      }
      balance();
      return;
    }
    var remove = event.target.closest("[data-remove-swatch]");
    if (remove) {
      remove.closest("[data-swatch]").remove();
      updatePaletteTotal();
      fire(box, "change");
      return;
    }
    if (event.target.closest("[data-clear-palette]")) {
      box.querySelector("[data-swatches]").innerHTML = "";
      updatePaletteTotal();
      fire(box, "change");
    }
  }

  function hslToHex(h, s, l) {
    s /= 100; l /= 100;
    var k = function (n) { return (n + h / 30) % 12; };
    var a = s * Math.min(l, 1 - l);
    var f = function (n) { return l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1))); };
    return "#" + [f(0), f(8), f(4)].map(function (x) { return Math.round(x * 255).toString(16).padStart(2, "0"); }).join("");
  }

  /* --- the cost line (#cost) follows the form --- */
  // Said here rather than as hx-trigger filters: those are JavaScript that htmx evaluates, and the
  // Content-Security-Policy forbids eval. A field with its own hx-post gets the cost back itself.
  document.addEventListener("change", function (event) {
    var cost = document.getElementById("cost");
    if (!cost || !window.htmx || !event.target.closest("#create-form")) return;
    if (!event.target.hasAttribute("hx-post")) window.htmx.trigger(cost, "form-changed");
  });
  document.addEventListener("input", function (event) {
    var cost = document.getElementById("cost");
    if (!cost || !window.htmx || !event.target.closest("#create-form")) return;
    if (event.target.name === "n") window.htmx.trigger(cost, "count-typed");
  });

  /* --- after htmx swaps and server events --- */
  function refresh(root) {
    renumber();
    initBoards(root);
    document.querySelectorAll("[data-counter-for]").forEach(updateCounter);
    updatePaletteTotal();
  }

  document.addEventListener("htmx:afterSettle", function (event) { refresh(event.target); });
  // Before the first paint of swapped content, not a settle delay later.
  document.addEventListener("htmx:afterSwap", function () { sizeBoards(document); });

  // A job was created: the form stays filled; an unlocked seed gives way to a new random one.
  document.body.addEventListener("job-created", function (event) {
    var lock = document.querySelector("[name=seed_lock]");
    var seed = document.getElementById("id_seed");
    if (seed && lock && !lock.checked) seed.value = "";
    // On a phone the list sits below the long form: bring the new card into view. The event
    // comes with the response, before the card is swapped in, so wait for the swap to settle.
    var id = event.detail && event.detail.id;
    if (!id) return;
    document.addEventListener("htmx:afterSettle", function bringIntoView() {
      var card = document.getElementById("job-" + id);
      if (!card) {
        document.addEventListener("htmx:afterSettle", bringIntoView, { once: true });
        return;
      }
      var box = card.getBoundingClientRect();
      if (box.top < 0 || box.bottom > window.innerHeight) card.scrollIntoView({ block: "start" });
    }, { once: true });
  });

  // Ctrl+Enter (Cmd+Enter on a Mac) sends the form from anywhere in it, the prompt included.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || !form()) return;
    if (!form().contains(event.target) && event.target !== document.body) return;
    event.preventDefault();
    form().requestSubmit();
  });

  // Only the form's own errors re-render it; a failed request must not leave the button busy.
  document.addEventListener("htmx:responseError", function (event) {
    var target = event.detail.elt;
    if (target && target.id === "create-form") {
      alert("The server could not take the request (" + event.detail.xhr.status + "). Please try again.");
    }
  });

  refresh(document);
})();
