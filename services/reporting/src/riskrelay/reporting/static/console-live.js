// Live lists for the console: every element with data-live-url is refreshed in place by polling
// that URL, an HTML fragment endpoint answering 304 while nothing changed (ETag / If-None-Match).
// A region holding a form the person has started to fill in is left alone until they are done.
(function () {
  "use strict";

  function changed(field) {
    if (field.type === "radio" || field.type === "checkbox") {
      return field.checked !== field.defaultChecked;
    }
    if (field.tagName === "SELECT") {
      return Array.prototype.some.call(field.options, function (option) {
        return option.selected !== option.defaultSelected;
      });
    }
    return field.value !== field.defaultValue;
  }

  function busy(region) {
    var active = document.activeElement;
    if (active && active !== document.body && region.contains(active)) {
      return true;
    }
    return Array.prototype.some.call(region.querySelectorAll("input, textarea, select"), changed);
  }

  function live(region) {
    var url = region.getAttribute("data-live-url");
    var seconds = Math.max(1, Number(region.getAttribute("data-live-seconds")) || 10);
    var status = document.getElementById(region.getAttribute("data-live-status") || "");
    var etag = region.getAttribute("data-live-etag");

    function say(text) {
      if (status) {
        status.textContent = text;
      }
    }

    function poll() {
      if (document.hidden) {
        window.setTimeout(poll, seconds * 1000);
        return;
      }
      var headers = { "X-Requested-With": "console-live" };
      if (etag) {
        headers["If-None-Match"] = etag;
      }
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: headers })
        .then(function (response) {
          if (response.status === 304) {
            say("up to date at " + new Date().toLocaleTimeString());
            return null;
          }
          if (response.status === 401) {
            say("signed out: reload the page to sign in again");
            return "stop";
          }
          if (!response.ok) {
            say("could not refresh (" + response.status + "); retrying");
            return null;
          }
          return response.text().then(function (html) {
            if (busy(region)) {
              say("changes waiting until you finish the form you are filling in");
              return null;
            }
            region.innerHTML = html;
            etag = response.headers.get("ETag");
            say("updated at " + new Date().toLocaleTimeString());
            return null;
          });
        })
        .catch(function () {
          say("offline; retrying");
          return null;
        })
        .then(function (outcome) {
          if (outcome !== "stop") {
            window.setTimeout(poll, seconds * 1000);
          }
        });
    }

    window.setTimeout(poll, seconds * 1000);
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-live-url]"), live);
})();
