// Palisade's WebAuthn ceremonies: adding a security key or passkey, logging in with a passkey,
// and a security key as the second factor. Forms marked `data-webauthn` post their fields to
// `data-options` (with the page's CSRF token in a header), hand the options to the browser's
// authenticator, and post its answer to `data-validate`. Binary fields travel as base64url.
(function () {
  "use strict";

  function decode(s) {
    const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(bin, function (c) { return c.charCodeAt(0); });
  }

  function encode(buf) {
    let bin = "";
    new Uint8Array(buf).forEach(function (b) { bin += String.fromCharCode(b); });
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(pk) {
    pk.challenge = decode(pk.challenge);
    pk.user.id = decode(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = decode(c.id); });
    return pk;
  }

  function requestOptions(pk) {
    pk.challenge = decode(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = decode(c.id); });
    return pk;
  }

  function credentialJson(c) {
    const r = c.response;
    const out = { id: c.id, rawId: encode(c.rawId), type: c.type, extensions: c.getClientExtensionResults(), response: { clientDataJSON: encode(r.clientDataJSON) } };
    if (r.attestationObject) {
      out.response.attestationObject = encode(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    } else {
      out.response.authenticatorData = encode(r.authenticatorData);
      out.response.signature = encode(r.signature);
      if (r.userHandle) { out.response.userHandle = encode(r.userHandle); }
    }
    return out;
  }

  async function post(url, csrf, body) {
    const r = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    let answer;
    try { answer = await r.json(); } catch (e) { answer = { error: "unexpected answer from the server (" + r.status + ")" }; }
    if (!r.ok) { throw new Error(answer.error || "refused (" + r.status + ")"); }
    return answer;
  }

  function showCodes(codes) {
    const section = document.getElementById("webauthn-codes");
    if (!section) { return; }
    const list = section.querySelector("ul");
    codes.forEach(function (code) {
      const li = document.createElement("li");
      const el = document.createElement("code");
      el.textContent = code;
      li.appendChild(el);
      list.appendChild(li);
    });
    section.hidden = false;
    section.focus();
  }

  document.querySelectorAll("form[data-webauthn]").forEach(function (form) {
    const status = form.querySelector("[data-webauthn-status]");
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      if (status) { status.hidden = true; }
      const button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; }
      try {
        if (!window.PublicKeyCredential) { throw new Error("This browser does not support security keys or passkeys."); }
        const fields = Object.fromEntries(new FormData(form));
        const csrf = fields.csrf || "";
        delete fields.csrf;
        const begun = await post(form.dataset.options, csrf, fields);
        const credential = form.dataset.webauthn === "register"
          ? await navigator.credentials.create({ publicKey: creationOptions(begun.options.publicKey) })
          : await navigator.credentials.get({ publicKey: requestOptions(begun.options.publicKey) });
        const done = await post(form.dataset.validate, csrf, { ceremony: begun.ceremony, credential: credentialJson(credential), next: fields.next || null });
        if (done.recovery_codes) {
          showCodes(done.recovery_codes);
          if (status) { status.textContent = done.message || "Added."; status.className = "notice-ok"; status.hidden = false; }
          form.reset();
        } else if (done.redirect) {
          window.location.assign(done.redirect);
        }
      } catch (e) {
        if (status) {
          status.textContent = e && e.name === "NotAllowedError" ? "The security key did not answer (cancelled or timed out)." : (e && e.message) || String(e);
          status.className = "error";
          status.hidden = false;
        }
      } finally {
        if (button) { button.disabled = false; }
      }
    });
  });
})();
