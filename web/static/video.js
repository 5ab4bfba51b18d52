// The /v/{token} call page: starts the call described by #call's data-
// attributes (pages allow no inline script), and tells the server once the
// call is joined (that is the patient's check-in; a link preview is not).
(function () {
  "use strict";
  var el = document.getElementById("call");
  if (!el) return;
  var d = el.dataset;
  var status = document.getElementById("call-status");
  var sent = false;

  function joined() {
    if (sent || !d.joined) return;
    sent = true;
    fetch(d.joined, { method: "POST", credentials: "omit", keepalive: true }).catch(function () {
      sent = false;
    });
  }

  function failed() {
    if (status) status.textContent = status.dataset.failed || "";
  }

  var tab = document.getElementById("new-tab");
  if (tab) tab.addEventListener("click", joined);

  if (d.provider === "jitsi") {
    if (typeof JitsiMeetExternalAPI === "undefined") return failed();
    var options = {
      roomName: d.room,
      parentNode: el,
      width: "100%",
      height: "100%",
      userInfo: { displayName: d.name || "" },
    };
    if (d.jwt) options.jwt = d.jwt;
    var api = new JitsiMeetExternalAPI(d.domain, options);
    api.addListener("videoConferenceJoined", joined);
    return;
  }

  if (d.provider === "twilio") {
    if (typeof Twilio === "undefined" || !Twilio.Video) return failed();
    var attach = function (track, box) {
      if (track && track.attach) box.appendChild(track.attach());
    };
    var participant = function (p) {
      var box = document.createElement("div");
      box.className = "remote";
      box.id = "p-" + p.sid;
      el.appendChild(box);
      p.tracks.forEach(function (pub) {
        if (pub.track) attach(pub.track, box);
      });
      p.on("trackSubscribed", function (track) {
        attach(track, box);
      });
      p.on("trackUnsubscribed", function (track) {
        track.detach().forEach(function (media) {
          media.remove();
        });
      });
    };
    Twilio.Video.connect(d.token, { name: d.room, audio: true, video: { width: 640 } }).then(
      function (room) {
        joined();
        var local = document.createElement("div");
        local.className = "local";
        el.appendChild(local);
        room.localParticipant.videoTracks.forEach(function (pub) {
          attach(pub.track, local);
        });
        room.participants.forEach(participant);
        room.on("participantConnected", participant);
        room.on("participantDisconnected", function (p) {
          var box = document.getElementById("p-" + p.sid);
          if (box) box.remove();
        });
        window.addEventListener("pagehide", function () {
          room.disconnect();
        });
      },
      failed
    );
  }
})();
