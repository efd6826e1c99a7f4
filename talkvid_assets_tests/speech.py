# ruff: noqa: RUF001  (the sentences are written in their own scripts on purpose)
"""Speech we can make here: espeak-ng reading a few sentences in each of the release's fourteen
languages, in several voices, with or without background noise, as 16 kHz mono float32.

espeak-ng is a formant synthesiser: its speech is intelligible but robotic, far from the
release's recorded talk, so what a language-ID model does on it is a lower bound of what it
does on people (README, "Spoken language"). Used by the language-ID tests and
``benchmarks/language_id.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import av
import numpy as np

from talkvid_assets.core.video import AUDIO_RATE

# The release's language name -> (espeak-ng voice, a few sentences of ordinary talk).
SPEECH: dict[str, tuple[str, str]] = {
    "English": (
        "en-us",
        "Hello everyone, thank you for joining me today. I want to talk about how I learned to "
        "cook when I moved to a new city, and why it changed the way I spend my evenings.",
    ),
    "Arabic": (
        "ar",
        "مرحبا بكم جميعا، شكرا لانضمامكم إلي اليوم. أريد أن أتحدث عن كيف تعلمت الطبخ عندما "
        "انتقلت إلى مدينة جديدة، ولماذا غير ذلك طريقة قضاء أمسياتي.",
    ),
    "Korean": (
        "ko",
        "안녕하세요 여러분, 오늘 함께해 주셔서 감사합니다. 새로운 도시로 이사했을 때 요리를 "
        "어떻게 배웠는지, 그리고 그것이 제 저녁 시간을 어떻게 바꾸었는지 이야기하고 싶습니다.",
    ),
    "Portuguese": (
        "pt",
        "Olá a todos, obrigado por estarem comigo hoje. Quero falar sobre como aprendi a "
        "cozinhar quando me mudei para uma nova cidade, e por que isso mudou as minhas noites.",
    ),
    "Spanish": (
        "es",
        "Hola a todos, gracias por acompañarme hoy. Quiero hablar de cómo aprendí a cocinar "
        "cuando me mudé a una ciudad nueva, y de por qué eso cambió mis noches.",
    ),
    "Russian": (
        "ru",
        "Всем привет, спасибо, что вы сегодня со мной. Я хочу рассказать, как я научился "
        "готовить, когда переехал в новый город, и почему это изменило мои вечера.",
    ),
    "Chinese": (
        "cmn",
        "大家好，谢谢你们今天和我在一起。我想谈谈我搬到一个新城市的时候是怎么学会做饭的，"
        "以及为什么这改变了我度过晚上的方式。",
    ),
    "Polish": (
        "pl",
        "Witam wszystkich, dziękuję, że jesteście dziś ze mną. Chcę opowiedzieć, jak nauczyłem "
        "się gotować, kiedy przeprowadziłem się do nowego miasta, i dlaczego zmieniło to moje "
        "wieczory.",
    ),
    "Thai": (
        "th",
        "สวัสดีทุกคน ขอบคุณที่มาอยู่กับผมวันนี้ ผมอยากเล่าว่าผมหัดทำอาหารได้อย่างไร "
        "ตอนที่ย้ายไปอยู่เมืองใหม่ และทำไมมันเปลี่ยนวิธีที่ผมใช้เวลาตอนเย็น",
    ),
    "French": (
        "fr-fr",
        "Bonjour à tous, merci d'être avec moi aujourd'hui. Je veux vous raconter comment j'ai "
        "appris à cuisiner quand j'ai déménagé dans une nouvelle ville, et pourquoi cela a "
        "changé mes soirées.",
    ),
    "Japanese": (
        "ja",
        "皆さん、こんにちは。今日は来てくださってありがとうございます。新しい町に引っ越した"
        "ときに料理を覚えた話と、それが夜の過ごし方をどう変えたかをお話しします。",
    ),
    "German": (
        "de",
        "Hallo zusammen, danke, dass ihr heute dabei seid. Ich möchte erzählen, wie ich kochen "
        "gelernt habe, als ich in eine neue Stadt gezogen bin, und warum das meine Abende "
        "verändert hat.",
    ),
    "Hindi": (
        "hi",
        "नमस्ते दोस्तों, आज मेरे साथ जुड़ने के लिए धन्यवाद। मैं बताना चाहता हूँ कि नए शहर में "
        "आने के बाद मैंने खाना बनाना कैसे सीखा, और इससे मेरी शामें कैसे बदल गईं।",
    ),
    "Italian": (
        "it",
        "Ciao a tutti, grazie di essere qui con me oggi. Voglio raccontarvi come ho imparato a "
        "cucinare quando mi sono trasferito in una nuova città, e perché questo ha cambiato le "
        "mie serate.",
    ),
}
VOICES = ("m1", "f2", "m3")  # espeak-ng voice variants: two male, one female
RATE_WPM = 150


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(language: str, voice: str = "m1") -> np.ndarray:
    """``language``'s sentences read by espeak-ng with ``voice``, as 16 kHz mono float32."""
    code, text = SPEECH[language]
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", f"{code}+{voice}", "-s", str(RATE_WPM), "-w", str(wav), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return read_audio(wav)


def read_audio(path: Path) -> np.ndarray:
    """Any audio file as 16 kHz mono float32."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [chunk.to_ndarray().reshape(-1) for chunk in resampler.resample(frame)]
    chunks += [chunk.to_ndarray().reshape(-1) for chunk in resampler.resample(None)]
    return np.concatenate(chunks)


def with_noise(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """``audio`` under white noise at ``snr_db`` (signal power over noise power)."""
    rng = np.random.default_rng(seed)
    power = float(np.mean(audio**2))
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(audio))
    return (audio + noise).astype(np.float32)
