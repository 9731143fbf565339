/* The pages' behaviour: search-as-you-type lookups, select-all, delete confirmation, the
   child-line editor with live subtotals, selects that submit their form when changed (the
   report builder's object), the report builder's searchable field pickers and live preview, the reports
   page's filter box, a form's dates in the page's language and the menu folded on a phone. Plain JavaScript,
   no libraries; every page works without it except the lookups' suggestions. */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  /* ------------------------------------------------------------------ lookups */

  function setupLookup(box) {
    if (box.dataset.ready) return;
    box.dataset.ready = "1";
    var text = box.querySelector(".lookup-text");
    var hidden = box.querySelector(".lookup-id");
    var list = box.querySelector(".lookup-results");
    var multi = box.classList.contains("multi");
    var timer = null, sequence = 0, active = -1;

    function close() {
      list.hidden = true;
      text.setAttribute("aria-expanded", "false");
      active = -1;
    }

    function choose(item) {
      if (multi) {
        var chosen = box.querySelector(".chosen");
        var exists = Array.prototype.some.call(chosen.querySelectorAll("input"), function (i) { return i.value === item.id; });
        if (!exists) {
          var label = document.createElement("label");
          label.className = "choice";
          var box_ = document.createElement("input");
          box_.type = "checkbox";
          box_.name = box.dataset.name;
          box_.value = item.id;
          box_.checked = true;
          label.append(box_, " " + item.title);
          chosen.append(label);
        }
        text.value = "";
      } else {
        hidden.value = item.id;
        text.value = item.title;
        hidden.dispatchEvent(new Event("change", { bubbles: true }));
      }
      close();
    }

    function show(items) {
      list.replaceChildren();
      if (!items.length) {
        var none = document.createElement("li");
        none.className = "none";
        none.textContent = box.dataset.none;
        list.append(none);
      }
      items.forEach(function (item) {
        var li = document.createElement("li");
        li.setAttribute("role", "option");
        li.textContent = item.title;
        li.addEventListener("mousedown", function (e) { e.preventDefault(); choose(item); });
        li.item = item;
        list.append(li);
      });
      list.hidden = false;
      text.setAttribute("aria-expanded", "true");
      active = -1;
    }

    function search() {
      var mine = ++sequence;
      fetch(box.dataset.url + "?q=" + encodeURIComponent(text.value.trim()),
            { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { items: [] }; })
        .then(function (data) { if (mine === sequence) show(data.items || []); })
        .catch(function () {});
    }

    function highlight(step) {
      var options = list.querySelectorAll("li[role=option]");
      if (!options.length) return;
      active = (active + step + options.length) % options.length;
      options.forEach(function (o, i) { o.classList.toggle("active", i === active); });
    }

    text.addEventListener("input", function () {
      if (!multi) hidden.value = "";
      clearTimeout(timer);
      timer = setTimeout(search, 200);
    });
    text.addEventListener("blur", function () { setTimeout(close, 150); });
    text.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown") { e.preventDefault(); if (list.hidden) search(); else highlight(1); }
      else if (e.key === "ArrowUp") { e.preventDefault(); highlight(-1); }
      else if (e.key === "Escape") { close(); }
      else if (e.key === "Enter" && !list.hidden && active >= 0) {
        e.preventDefault();
        choose(list.querySelectorAll("li[role=option]")[active].item);
      }
    });
  }

  /* ------------------------------------------------------------------ child lines */

  function number(value) {
    if (value === null || value === undefined || String(value).trim() === "") return null;
    var n = Number(String(value).replace(/,/g, ""));
    return isFinite(n) ? n : NaN;
  }

  function evaluate(tree, lookup) {
    switch (tree[0]) {
      case "lit": return tree[1] === null ? null : Number(tree[1]);
      case "var": return lookup(tree[1]);
      case "neg": { var v = evaluate(tree[1], lookup); return v === null ? null : -v; }
      case "op": {
        var a = evaluate(tree[2], lookup), b = evaluate(tree[3], lookup);
        if (a === null || b === null) return null;
        if (tree[1] === "+") return a + b;
        if (tree[1] === "-") return a - b;
        if (tree[1] === "*") return a * b;
        return b === 0 ? null : a / b;
      }
      case "call": {
        var args = tree.slice(2);
        if (tree[1] === "coalesce") {
          for (var i = 0; i < args.length; i++) {
            var value = evaluate(args[i], lookup);
            if (value !== null) return value;
          }
          return null;
        }
        var x = evaluate(args[0], lookup), places = args.length > 1 ? evaluate(args[1], lookup) : 0;
        if (x === null) return null;
        var f = Math.pow(10, places || 0);
        return Math.round(x * f) / f;
      }
    }
    return null;
  }

  function money(value, scale) {
    if (value === null || isNaN(value)) return "";
    return value.toLocaleString("en-US", { minimumFractionDigits: scale, maximumFractionDigits: scale });
  }

  function setupLines(fieldset) {
    var live = JSON.parse(fieldset.dataset.live);
    var form = fieldset.closest("form");
    var tbody = fieldset.querySelector("tbody");
    var template = fieldset.querySelector("template.line-template");
    var counter = 1000 + tbody.rows.length;

    function recompute() {
      var sums = {};
      Object.keys(live.sums).forEach(function (k) { sums[k] = 0; });
      Array.prototype.forEach.call(tbody.rows, function (row) {
        var computed = {};
        var lookup = function (name) {
          if (name in computed) return computed[name];
          var input = row.querySelector('[data-field="' + name + '"]');
          return input ? number(input.value) : null;
        };
        Object.keys(live.lines).forEach(function (name) {
          var value = evaluate(live.lines[name], lookup);
          computed[name] = value;
          var cell = row.querySelector('[data-out="' + name + '"]');
          if (cell) cell.textContent = money(value, live.scales[name]);
        });
        Object.keys(live.sums).forEach(function (parentField) {
          var value = lookup(live.sums[parentField]);
          if (value !== null && !isNaN(value) && sums[parentField] !== null) sums[parentField] += value;
          else if (isNaN(value)) sums[parentField] = null;
        });
      });
      var parent = function (name) {
        if (name in sums) return sums[name];
        var input = form.querySelector('[name="' + name + '"]');
        return input ? number(input.value) : null;
      };
      Object.keys(sums).forEach(function (name) {
        var cell = fieldset.querySelector('[data-total="' + name + '"]');
        if (cell) cell.textContent = money(sums[name], 2);
      });
      Object.keys(live.totals).forEach(function (name) {
        var cell = fieldset.querySelector('[data-total="' + name + '"]');
        if (cell) cell.textContent = money(evaluate(live.totals[name], parent), 2);
      });
    }

    fieldset.querySelector(".add-line").addEventListener("click", function () {
      tbody.insertAdjacentHTML("beforeend", template.innerHTML.split("__i__").join(String(counter++)));
      tbody.lastElementChild.querySelectorAll(".lookup").forEach(setupLookup);
      recompute();
    });
    tbody.addEventListener("click", function (e) {
      var button = e.target.closest(".remove-line");
      if (button) { button.closest("tr").remove(); recompute(); }
    });
    form.addEventListener("input", recompute);
    form.addEventListener("change", recompute);
    recompute();
  }

  /* ------------------------------------------------------------------ job progress */

  function watchJob(section) {
    var bar = section.querySelector("progress");
    var done = section.querySelector(".done"), total = section.querySelector(".total");
    function poll() {
      fetch(section.dataset.statusUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (job) {
          if (!job) return;
          var p = job.progress || {};
          if (p.total) { bar.max = p.total; bar.value = p.done || 0; total.textContent = p.total; }
          done.textContent = p.done || 0;
          if (["finished", "failed", "interrupted"].indexOf(job.status) >= 0) window.location.reload();
          else setTimeout(poll, 500);
        })
        .catch(function () { setTimeout(poll, 1000); });
    }
    poll();
  }

  /* ------------------------------------------------------------------ locating (check-in, nearby) */

  // A form with data-locate fills its lat, lng and accuracy inputs from the browser's geolocation before it is
  // sent, unless both coordinates were typed; where the browser cannot locate (no permission, a desktop), it says
  // so and opens the inputs to type them.
  function setupLocate(form) {
    var status = form.querySelector("[data-locate-status]");
    function set(name, value) {
      var input = form.querySelector('input[name="' + name + '"]');
      if (input) input.value = value;
    }
    form.addEventListener("submit", function (e) {
      var lat = form.querySelector('input[name="lat"]'), lng = form.querySelector('input[name="lng"]');
      if (form.dataset.located || !navigator.geolocation || (lat.value && lng.value)) return;  // typed: sent as is
      e.preventDefault();
      if (status) status.textContent = status.dataset.locating;
      navigator.geolocation.getCurrentPosition(function (position) {
        set("lat", position.coords.latitude.toFixed(6));
        set("lng", position.coords.longitude.toFixed(6));
        set("accuracy", Math.round(position.coords.accuracy));
        form.dataset.located = "1";
        form.submit();
      }, function () {
        if (status) status.textContent = status.dataset.failed;
        form.querySelectorAll("details.manual").forEach(function (m) { m.open = true; });
      }, {enableHighAccuracy: true, timeout: 15000, maximumAge: 0});
    });
  }

  /* ------------------------------------------------------------------ a chosen lookup's fields */

  function setupShown(dl) {
    var hidden = dl.previousElementSibling && dl.previousElementSibling.querySelector(".lookup-id");
    if (!hidden) return;
    function refresh() {
      dl.replaceChildren();
      if (!hidden.value) return;
      var url = dl.dataset.url.replace(/\/0$/, "/" + encodeURIComponent(hidden.value));
      fetch(url + "?fields=" + encodeURIComponent(dl.dataset.fields), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          dl.replaceChildren();
          data.items.forEach(function (item) {
            var dt = document.createElement("dt"), dd = document.createElement("dd");
            dt.textContent = item.label;
            dd.textContent = item.value;
            dd.dataset.field = item.name;
            dl.append(dt, dd);
          });
        });
    }
    hidden.addEventListener("change", refresh);
    refresh();
  }

  /* ------------------------------------------------------------------ @mentions in a comment */

  /* a colleague chosen in the picker is written into the comment as @name, where the cursor is */
  function setupMention(picker) {
    picker.addEventListener("change", function () {
      var name = picker.value.trim();
      if (!name) return;
      var area = picker.form.querySelector("textarea");
      var at = area.selectionStart || area.value.length;
      var before = area.value.slice(0, at), after = area.value.slice(at);
      var space = before && !/\s$/.test(before) ? " " : "";
      area.value = before + space + "@" + name.replace(/^@/, "") + " " + after;
      picker.value = "";
      area.focus();
    });
  }

  /* ------------------------------------------------------------------ the reports page's filter box */

  // Typing hides the reports whose label and description (both languages) do not hold the text, and the folders
  // left empty; without script the box is a search form the server answers.
  function setupReportFilter(input) {
    var none = document.querySelector("[data-none-found]");
    input.addEventListener("input", function () {
      var words = input.value.trim().toLowerCase(), found = 0;
      document.querySelectorAll("section.report-folder").forEach(function (folder) {
        var shown = 0, items = folder.querySelectorAll("li[data-search]");
        items.forEach(function (item) {
          var match = item.dataset.search.indexOf(words) >= 0;
          item.hidden = !match;
          if (match) shown++;
        });
        folder.hidden = words !== "" && shown === 0;
        found += shown;
      });
      if (none) none.hidden = words === "" || found > 0;
    });
  }

  /* ------------------------------------------------------------------ searchable field pickers */

  // A select.field-picker (the report builder's fields, in groups) gets a text box that finds its options by
  // any part of their label ("金额", "商机 › 金"); the select stays in the form, hidden, holding the choice.
  function setupPicker(select) {
    var box = document.createElement("div");
    var text = document.createElement("input");
    var list = document.createElement("ul");
    var active = -1;
    box.className = "picker";
    text.type = "text";
    text.className = "picker-text";
    text.autocomplete = "off";
    text.placeholder = select.dataset.search;
    text.setAttribute("role", "combobox");
    text.setAttribute("aria-autocomplete", "list");
    text.setAttribute("aria-expanded", "false");
    text.setAttribute("aria-label", select.getAttribute("aria-label"));
    list.className = "lookup-results";
    list.setAttribute("role", "listbox");
    list.hidden = true;
    select.parentNode.insertBefore(box, select);
    box.append(text, list, select);
    select.hidden = true;

    function chosenText() {
      var option = select.options[select.selectedIndex];
      return option && option.value ? option.textContent : "";
    }
    function close() { list.hidden = true; text.setAttribute("aria-expanded", "false"); active = -1; }
    function choose(option) {
      select.value = option.value;
      text.value = chosenText();
      close();
      select.dispatchEvent(new Event("change", { bubbles: true }));
    }
    function show() {
      var words = text.value.trim().toLowerCase().split(/\s+/).filter(Boolean), shown = 0;
      list.replaceChildren();
      Array.prototype.forEach.call(select.options, function (option) {
        if (!option.value || shown >= 80) return;
        var said = option.textContent.toLowerCase();
        if (!words.every(function (w) { return said.indexOf(w) >= 0; })) return;
        var li = document.createElement("li");
        li.setAttribute("role", "option");
        li.textContent = option.textContent;
        li.option = option;
        li.addEventListener("mousedown", function (e) { e.preventDefault(); choose(option); });
        list.append(li);
        shown++;
      });
      if (!shown) {
        var none = document.createElement("li");
        none.className = "none";
        none.textContent = select.dataset.none;
        list.append(none);
      }
      list.hidden = false;
      text.setAttribute("aria-expanded", "true");
      active = -1;
    }
    function highlight(step) {
      var options = list.querySelectorAll("li[role=option]");
      if (!options.length) return;
      active = (active + step + options.length) % options.length;
      options.forEach(function (o, i) { o.classList.toggle("active", i === active); });
      options[active].scrollIntoView({ block: "nearest" });
    }

    text.value = chosenText();
    text.addEventListener("focus", function () { text.select(); show(); });
    text.addEventListener("input", show);
    text.addEventListener("blur", function () {
      close();
      if (!text.value.trim() && select.value) {  // emptied: no field
        select.value = "";
        select.dispatchEvent(new Event("change", { bubbles: true }));
      }
      text.value = chosenText();
    });
    text.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown") { e.preventDefault(); if (list.hidden) show(); else highlight(1); }
      else if (e.key === "ArrowUp") { e.preventDefault(); highlight(-1); }
      else if (e.key === "Escape") { close(); text.value = chosenText(); }
      else if (e.key === "Enter" && !list.hidden) {
        e.preventDefault();
        var options = list.querySelectorAll("li[role=option]");
        if (options.length) choose(options[Math.max(active, 0)].option);
      }
    });
  }

  /* ------------------------------------------------------------------ the report builder's values and columns */

  // A filter row's value is chosen by label from its field's values (a picklist's, stage's, state's, the users')
  // when the field has such values (its option's data-values names a <template data-value-set>), several for
  // "one of"; typed otherwise. The form posts the stored values.
  function setupFilterValues(form) {
    function refresh(row) {
      var field = row.querySelector("select.field-picker"), op = row.querySelector("select[name$=_op]");
      var current = row.querySelector("[data-filter-value] [name$=_value]");
      var option = field.options[field.selectedIndex], set = option && option.dataset.values;
      var template = set && form.querySelector('template[data-value-set="' + set + '"]');
      var chosen = current.tagName === "SELECT"
        ? Array.prototype.map.call(current.selectedOptions, function (o) { return o.value; })
        : current.value.split(",").map(function (v) { return v.trim(); });
      var control;
      if (template) {
        control = document.createElement("select");
        control.multiple = op.value === "in";
        if (!control.multiple) control.append(new Option("—", ""));
        control.append(template.content.cloneNode(true));
        Array.prototype.forEach.call(control.options, function (o) { o.selected = chosen.indexOf(o.value) >= 0; });
      } else if (current.tagName === "SELECT") {
        control = document.createElement("input");  // the codes of the field before mean nothing here
        control.type = "text";
        control.setAttribute("list", "report-date-ranges");
      } else {
        return;
      }
      control.name = current.name;
      control.setAttribute("aria-label", current.getAttribute("aria-label"));
      current.replaceWith(control);
    }
    form.querySelectorAll("tr[data-filter-row]").forEach(function (row) {
      row.querySelector("select.field-picker").addEventListener("change", function () { refresh(row); });
      row.querySelector("select[name$=_op]").addEventListener("change", function () { refresh(row); });
    });
  }

  // The sort and chart settings offer the report's columns by label (select[data-columns]): its dimensions and
  // measures as the rows above make them, keyed as the server keys them, refreshed as the rows change.
  function setupColumns(form) {
    function key(text) { return text.toLowerCase().replace(/[^a-z0-9_]+/g, "_").replace(/^_+|_+$/g, ""); }
    function said(select) {
      var o = select && select.options[select.selectedIndex];
      return o && o.value ? o.textContent : "";
    }
    function value(name) { var e = form.elements[name]; return e ? e.value.trim() : ""; }
    function columns() {
      var dimensions = [], measures = [];
      var rows = [];
      for (var d = 0; form.elements["d" + d + "_field"]; d++) rows.push("d" + d + "_");
      rows.concat(["col_"]).forEach(function (p) {
        var field = value(p + "field"), bucket = value(p + "bucket");
        if (!field) return;
        var label = said(form.elements[p + "field"]);
        dimensions.push([value(p + "key") || key(field + (bucket ? "_" + bucket : "")),
                         bucket ? label + " (" + said(form.elements[p + "bucket"]) + ")" : label]);
      });
      for (var i = 0; form.elements["m" + i + "_function"]; i++) {
        var fn = value("m" + i + "_function"), field = value("m" + i + "_field");
        if (!fn) continue;
        var named = said(form.elements["m" + i + "_function"]);
        measures.push([value("m" + i + "_key") || (field ? key(fn + "_" + field) : fn),
                       value("m" + i + "_label") || (field ? named + " · " + said(form.elements["m" + i + "_field"]) : named)]);
      }
      return { dimensions: dimensions, measures: measures, all: dimensions.concat(measures) };
    }
    function refresh(e) {
      if (e && e.target.closest && e.target.closest("select[data-columns]")) return;
      var found = columns();
      form.querySelectorAll("select[data-columns]").forEach(function (select) {
        var chosen = Array.prototype.map.call(select.selectedOptions, function (o) { return o.value; });
        var blank = select.multiple ? null : select.options[0] && !select.options[0].value ? select.options[0] : null;
        select.replaceChildren();
        if (blank) select.append(blank);
        found[select.dataset.columns].forEach(function (c) {
          var o = new Option(c[1], c[0]);
          o.selected = chosen.indexOf(c[0]) >= 0;
          select.append(o);
        });
      });
    }
    form.addEventListener("change", refresh);
  }

  /* ------------------------------------------------------------------ the report builder's live preview */

  // As the builder's form changes, it is sent as a preview (do=preview: the same run as the Run button) and the
  // answer replaces the chart, table and problems below it; the buttons still run, save and export without script.
  function setupPreview(form) {
    var target = document.getElementById("report-preview");
    var timer = null, sequence = 0;
    function preview() {
      var mine = ++sequence, data = new FormData(form);
      data.set("do", "preview");
      target.classList.add("loading");
      fetch(form.action, { method: "POST", body: data, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (mine !== sequence) return;
          target.classList.remove("loading");
          if (html !== null) target.innerHTML = html;
        })
        .catch(function () { target.classList.remove("loading"); });
    }
    function soon() { clearTimeout(timer); timer = setTimeout(preview, 400); }
    if (!target.querySelector("table, .flash")) preview();  // a new report: its count right away
    form.addEventListener("change", soon);
    form.addEventListener("input", function (e) { if (!e.target.classList.contains("picker-text")) soon(); });
  }

  /* ------------------------------------------------------------------ a date in the page's language */
  /* The browser's date picker orders a date as its own locale does (12/08/2026 in an English Chromium); the words
     under it say the chosen day in the page's language, as the server first wrote them (i18n.date_in_words). */

  function setupDateWords(words) {
    var input = document.getElementById(words.dataset.for);
    if (!input) return;
    var format = new Intl.DateTimeFormat(document.documentElement.lang, {dateStyle: "full"});
    function show() {
      var m = /^(\d{4})-(\d\d)-(\d\d)(?:T(\d\d:\d\d))?/.exec(input.value);
      words.textContent = m ? format.format(new Date(+m[1], m[2] - 1, +m[3])) + (m[4] ? " " + m[4] : "") : "";
    }
    input.addEventListener("input", show);
    input.addEventListener("change", show);
  }

  /* ------------------------------------------------------------------ start */

  /* the menu starts folded on a phone (its <details> opens with a tap; without script it stays open) */
  if (window.matchMedia("(max-width: 760px)").matches) {
    document.querySelectorAll("details.menu").forEach(function (menu) { menu.open = false; });
  }

  ready(function () {
    document.querySelectorAll(".lookup").forEach(setupLookup);
    document.querySelectorAll("form[data-locate]").forEach(setupLocate);
    document.querySelectorAll(".lookup-shown").forEach(setupShown);
    document.querySelectorAll(".mention-picker").forEach(setupMention);
    document.querySelectorAll(".date-in-words[data-for]").forEach(setupDateWords);
    document.querySelectorAll("fieldset.lines[data-live]").forEach(setupLines);
    document.querySelectorAll("input[data-filter-reports]").forEach(setupReportFilter);
    document.querySelectorAll("select.field-picker").forEach(setupPicker);
    document.querySelectorAll("form.builder").forEach(setupFilterValues);
    document.querySelectorAll("form.builder").forEach(setupColumns);
    document.querySelectorAll("form[data-preview]").forEach(setupPreview);
    document.querySelectorAll(".import-progress").forEach(function (section) {
      if (["finished", "failed", "interrupted"].indexOf(section.dataset.status) < 0) watchJob(section);
    });
    document.querySelectorAll(".select-all").forEach(function (all) {
      all.addEventListener("change", function () {
        all.closest("form").querySelectorAll('input[name="ids"]').forEach(function (c) { c.checked = all.checked; });
      });
    });
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
    document.querySelectorAll("form.confirm").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.dataset.confirm)) e.preventDefault();
      });
    });
  });
})();
