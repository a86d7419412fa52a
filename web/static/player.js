// Playback with hls.js (native HLS where the browser has it): a quality
// menu, and every request's URL passed through `rewrite`, so a fresh
// playback token replaces an expiring one mid-film.
import Hls from "/static/vendor/hls.mjs";

export class Player {
  constructor(video, quality, onFatal) {
    this.video = video;
    this.quality = quality;
    this.onFatal = onFatal;
    quality.addEventListener("change", () => {
      if (this.hls) this.hls.currentLevel = Number(quality.value);
    });
  }

  /** Plays `src`; `rewrite(url)` gives the URL each request really goes to. */
  play(src, rewrite = (url) => url) {
    this.stop();
    if (Hls.isSupported()) {
      const hls = new Hls({
        // Opening the request here is how hls.js lets the URL change.
        xhrSetup: (xhr, url) => xhr.open("GET", rewrite(url), true),
      });
      hls.on(Hls.Events.MANIFEST_PARSED, (_event, data) => this.fillQualities(data.levels));
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (data.fatal) this.onFatal(data);
      });
      hls.loadSource(rewrite(src));
      hls.attachMedia(this.video);
      this.hls = hls;
    } else if (this.video.canPlayType("application/vnd.apple.mpegurl")) {
      this.video.src = rewrite(src);
    } else {
      this.onFatal({ details: "this browser plays neither HLS nor MSE" });
      return;
    }
    this.video.play().catch(() => {
      // Autoplay refused: the viewer presses play.
    });
  }

  fillQualities(levels) {
    this.quality.replaceChildren(new Option("Auto", "-1"));
    levels.forEach((level, index) => {
      this.quality.append(new Option(`${level.height}p`, String(index)));
    });
  }

  stop() {
    if (this.hls) {
      this.hls.destroy();
      this.hls = undefined;
    }
    this.video.removeAttribute("src");
    this.video.load();
  }
}
