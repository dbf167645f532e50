// The issue form, with JavaScript: Markdown buttons, items reordered by drag, a draft kept in this
// browser (localStorage) until saved, a warning before leaving unsaved changes, Remove with Undo,
// and a live preview of the unsaved form beside it on wide screens. Without JavaScript the form
// does all of this by its buttons (Move up/down, Remove asks first, "Preview these changes").
(function () {
  "use strict";
  var form = document.getElementById("issue-form");
  if (!form) return;
  var key = "mailer-draft:" + form.dataset.slug + ":" + form.dataset.version;
  var order = document.getElementById("order");
  var dirty = false;
  var submitting = false;
  var saveTimer = null;
  var liveTimer = null;

  function items() { return Array.prototype.slice.call(form.querySelectorAll("section.item")); }
  function fields() {
    return Array.prototype.slice.call(form.querySelectorAll("input[type=text], input[type=checkbox], textarea"))
      .filter(function (el) { return el.name && !el.getAttribute("form"); });
  }

  // A draft of the unsaved form, in this browser only.
  function saveDraft() {
    var values = {};
    fields().forEach(function (el) { values[el.name] = el.type === "checkbox" ? el.checked : el.value; });
    try {
      localStorage.setItem(key, JSON.stringify({ values: values, order: order.value, at: new Date().toISOString() }));
    } catch (e) { /* storage full or refused: the warning on leaving still protects the changes */ }
  }
  function changed() {
    dirty = true;
    clearTimeout(saveTimer);
    saveTimer = setTimeout(saveDraft, 400);
    clearTimeout(liveTimer);
    liveTimer = setTimeout(preview, 900);
  }
  function applyOrder(value) {
    if (!value) return;
    var byIndex = {};
    items().forEach(function (s) { byIndex[s.dataset.index] = s; });
    var end = document.getElementById("items-end");
    value.split(",").forEach(function (i) { if (byIndex[i]) end.parentNode.insertBefore(byIndex[i], end); });
    order.value = value;
  }
  function restore() {
    var raw = null;
    try { raw = localStorage.getItem(key); } catch (e) { return; }
    if (!raw) return;
    var draft;
    try { draft = JSON.parse(raw); } catch (e) { return; }
    fields().forEach(function (el) {
      if (!(el.name in draft.values)) return;
      if (el.type === "checkbox") el.checked = !!draft.values[el.name];
      else el.value = draft.values[el.name];
    });
    applyOrder(draft.order);
    dirty = true;
    var note = document.createElement("div");
    note.className = "notice";
    note.setAttribute("role", "status");
    note.innerHTML = "<p>Your unsaved changes were brought back from this browser. Save to keep them. </p>";
    var discard = document.createElement("button");
    discard.type = "button";
    discard.className = "small secondary";
    discard.textContent = "Discard them";
    discard.addEventListener("click", function () {
      localStorage.removeItem(key);
      dirty = false;
      location.reload();
    });
    note.firstChild.appendChild(discard);
    form.parentNode.parentNode.insertBefore(note, form.parentNode);
  }

  // Markdown buttons above each text box.
  var MARKS = [
    ["Bold", "**", "**", "bold text"],
    ["Italic", "_", "_", "text"],
    ["Link", "[", "](https://)", "link text"],
    ["List", "\n- ", "", "item"],
    ["Heading", "\n### ", "", "Heading"]
  ];
  form.querySelectorAll("textarea").forEach(function (area) {
    var bar = document.createElement("div");
    bar.className = "toolbar";
    bar.setAttribute("role", "group");
    bar.setAttribute("aria-label", "Formatting for " + (document.querySelector("label[for='" + area.id + "']") || {}).textContent);
    MARKS.forEach(function (m) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "small secondary";
      b.textContent = m[0];
      b.addEventListener("click", function () {
        var s = area.selectionStart, e = area.selectionEnd;
        var chosen = area.value.slice(s, e) || m[3];
        area.setRangeText(m[1] + chosen + m[2], s, e, "end");
        area.focus();
        area.setSelectionRange(s + m[1].length, s + m[1].length + chosen.length);
        changed();
      });
      bar.appendChild(b);
    });
    area.parentNode.insertBefore(bar, area);
  });

  // Drag to reorder (Move up and Move down stay for keyboards).
  var dragged = null;
  items().forEach(function (section) {
    var summary = section.querySelector("summary");
    var handle = document.createElement("span");
    handle.className = "drag";
    handle.setAttribute("aria-hidden", "true");
    handle.textContent = "⠿ drag";
    summary.insertBefore(handle, summary.firstChild);
    section.draggable = true;
    section.addEventListener("dragstart", function (ev) {
      dragged = section;
      section.classList.add("dragging");
      ev.dataTransfer.effectAllowed = "move";
      ev.dataTransfer.setData("text/plain", section.dataset.index);
    });
    section.addEventListener("dragend", function () {
      section.classList.remove("dragging");
      dragged = null;
      var now = items().map(function (s) { return s.dataset.index; }).join(",");
      if (now !== (order.value || items().map(function (s, i) { return i; }).join(","))) {
        order.value = now;
        changed();
      }
    });
  });

  function moveTo(ev) {
    var target = ev.target.closest && ev.target.closest("section.item");
    if (!target || target === dragged) return;
    var box = target.getBoundingClientRect();
    var after = ev.clientY > box.top + box.height / 2;
    target.parentNode.insertBefore(dragged, after ? target.nextSibling : target);
  }
  form.addEventListener("dragover", function (ev) {
    if (!dragged) return;
    ev.preventDefault();
    moveTo(ev);
  });
  form.addEventListener("drop", function (ev) {
    if (!dragged) return;
    ev.preventDefault();
    moveTo(ev);
  });

  // Remove, with a few seconds to undo.
  form.querySelectorAll("button[data-remove]").forEach(function (button) {
    button.addEventListener("click", function (ev) {
      ev.preventDefault();
      var section = button.closest("section.item");
      section.hidden = true;
      var bar = document.createElement("div");
      bar.className = "undo";
      bar.setAttribute("role", "status");
      var title = section.querySelector("h3").textContent;
      bar.textContent = "Removed “" + title + "”. ";
      var undo = document.createElement("button");
      undo.type = "button";
      undo.className = "small secondary";
      undo.textContent = "Undo";
      bar.appendChild(undo);
      section.parentNode.insertBefore(bar, section);
      undo.focus();
      var timer = setTimeout(function () {
        var position = items().indexOf(section);
        [["action", "remove-item-" + position], ["confirmed", "yes"]].forEach(function (pair) {
          var input = document.createElement("input");
          input.type = "hidden";
          input.name = pair[0];
          input.value = pair[1];
          form.appendChild(input);
        });
        submitting = true;
        try { localStorage.removeItem(key); } catch (e) { /* nothing kept */ }
        form.submit();
      }, 6000);
      undo.addEventListener("click", function () {
        clearTimeout(timer);
        bar.remove();
        section.hidden = false;
        button.focus();
      });
    });
  });

  // A photo too large is said before it is sent (the server refuses it anyway).
  document.querySelectorAll("input[type=file]").forEach(function (input) {
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      var said = document.getElementById(input.id + "-size");
      if (said) said.remove();
      if (file && file.size > 10 * 1024 * 1024) {
        var note = document.createElement("span");
        note.className = "error";
        note.id = input.id + "-size";
        note.setAttribute("role", "alert");
        note.textContent = "This photo is over 10 MB: choose a smaller one.";
        input.parentNode.insertBefore(note, input);
        input.value = "";
      }
    });
  });

  // The live preview: the unsaved form rendered in the frame beside it.
  var wide = window.matchMedia("(min-width: 80rem)");
  function preview() {
    if (!wide.matches) return;
    var action = form.getAttribute("action");
    form.setAttribute("action", action + "/preview/live");
    form.setAttribute("target", "live-preview");
    form.submit();
    form.setAttribute("action", action);
    form.removeAttribute("target");
  }
  if (wide.matches) document.getElementById("editor").classList.add("has-live");

  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  form.addEventListener("submit", function (ev) {
    if (ev.submitter && ev.submitter.getAttribute("formtarget")) return;
    submitting = true;
    try { localStorage.removeItem(key); } catch (e) { /* nothing kept */ }
  });
  window.addEventListener("beforeunload", function (ev) {
    if (dirty && !submitting) { ev.preventDefault(); ev.returnValue = ""; }
  });
  restore();
  preview();
})();
