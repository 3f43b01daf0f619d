"""Every string the UI shows, in Korean and English, and which language a browser asks for.

Korean is the default when the browser prefers it (`Accept-Language`, or the browser's own
locale when no header reached the app); English otherwise. Keys are dotted by tab; a key
missing in one language is a bug that `tests/unit/test_ui_i18n.py` catches.
"""

from __future__ import annotations

from typing import Final, Literal

Language = Literal["ko", "en"]
LANGUAGES: Final[tuple[Language, ...]] = ("ko", "en")
LANGUAGE_NAMES: Final[dict[Language, str]] = {"ko": "한국어", "en": "English"}

STRINGS: Final[dict[str, dict[Language, str]]] = {
    "app.title": {"ko": "다이캐스팅 품질 예측", "en": "Die-casting quality"},
    "app.caption": {
        "ko": "프로젝트 {project} · 예측, 원인 분석, 지식 기반 상담, 이력",
        "en": "Project {project} · predict, explain, ask, history",
    },
    "app.language": {"ko": "언어", "en": "Language"},
    "tab.predict": {"ko": "예측", "en": "Predict"},
    "tab.analysis": {"ko": "분석", "en": "Analysis"},
    "tab.assistant": {"ko": "상담", "en": "Assistant"},
    "tab.history": {"ko": "이력", "en": "History"},
    "tab.models": {"ko": "모델", "en": "Models"},
    "banner.down": {
        "ko": "서버 연결 실패: {service} ({url}) — {reason}",
        "en": "Server down: {service} ({url}) — {reason}",
    },
    "service.predictor": {"ko": "예측 서버(predictor)", "en": "predictor"},
    "service.transformer": {"ko": "변환 서버(transformer)", "en": "transformer"},
    "service.explainer": {"ko": "설명 서버(explainer)", "en": "explainer"},
    "service.knowledge": {"ko": "지식 기반(knowledge)", "en": "knowledge base"},
    "service.collector": {"ko": "수집기(collector)", "en": "collector"},
    "service.mlflow": {"ko": "MLflow", "en": "MLflow"},
    # Predict
    "predict.group.process": {"ko": "공정 변수", "en": "Process"},
    "predict.group.sensor": {"ko": "센서 값", "en": "Sensor"},
    "predict.group.other": {"ko": "기타", "en": "Other"},
    "predict.field_help": {
        "ko": "{description} · 정상 범위 {normal} {unit} · 허용 범위 {bounds}",
        "en": "{description} · normal {normal} {unit} · bounds {bounds}",
    },
    "predict.normal": {"ko": "정상 {low}–{high} {unit}", "en": "normal {low}–{high} {unit}"},
    "predict.submit": {"ko": "예측하기", "en": "Predict"},
    "predict.reset": {"ko": "정상 범위 중앙값으로", "en": "Reset to mid normal range"},
    "predict.load": {"ko": "샷 불러오기", "en": "Load a shot"},
    "predict.paste": {"ko": "JSON 붙여넣기", "en": "Paste JSON"},
    "predict.paste_apply": {"ko": "붙여넣은 JSON 적용", "en": "Apply pasted JSON"},
    "predict.upload": {"ko": "JSON 파일 올리기", "en": "Upload a JSON file"},
    "predict.recent": {"ko": "최근 기록된 샷", "en": "Recent logged shot"},
    "predict.recent_apply": {"ko": "선택한 샷 적용", "en": "Use the chosen shot"},
    "predict.recent_none": {"ko": "기록된 샷이 아직 없습니다.", "en": "No logged shots yet."},
    "predict.loaded": {"ko": "샷을 불러왔습니다: {source}", "en": "Shot loaded: {source}"},
    "predict.refused_form": {
        "ko": "보낼 수 없습니다. 입력을 고치세요: {fields}",
        "en": "Not sent; fix these fields first: {fields}",
    },
    "predict.outside_normal": {
        "ko": "정상 범위 밖: {fields}",
        "en": "Outside the normal range: {fields}",
    },
    "predict.result": {"ko": "예측 결과", "en": "Result"},
    "predict.class": {"ko": "판정", "en": "Class"},
    "predict.probability": {"ko": "불량 확률", "en": "Defect probability"},
    "predict.confidence": {"ko": "신뢰도", "en": "Confidence"},
    "predict.version": {"ko": "모델 버전", "en": "Model version"},
    "predict.latency": {"ko": "응답 시간", "en": "Latency"},
    "predict.latent": {"ko": "잠재 특징 (AutoEncoder)", "en": "Latent features (AutoEncoder)"},
    "predict.server_refused": {
        "ko": "{service}가 요청을 거절했습니다 ({status}): {message}",
        "en": "The {service} refused the request ({status}): {message}",
    },
    "class.ok": {"ko": "양품 (ok)", "en": "ok"},
    "class.defect": {"ko": "불량 (defect)", "en": "defect"},
    "confidence.low": {"ko": "낮음", "en": "low"},
    "confidence.medium": {"ko": "보통", "en": "medium"},
    "confidence.high": {"ko": "높음", "en": "high"},
    # Field problems (the form) and shot files
    "problem.empty": {"ko": "{field}: 값이 비어 있습니다", "en": "{field}: empty"},
    "problem.not_a_number": {
        "ko": "{field}: 숫자가 아닙니다 ({value})",
        "en": "{field}: not a number ({value})",
    },
    "problem.out_of_bounds": {
        "ko": "{field}: {value}는 허용 범위 [{low}, {high}] 밖입니다",
        "en": "{field}: {value} is outside the bounds [{low}, {high}]",
    },
    "shot.too_large": {
        "ko": "JSON 샷이 너무 큽니다: {size} 바이트 (최대 {limit})",
        "en": "The JSON shot is too large: {size} bytes (limit {limit})",
    },
    "shot.malformed": {
        "ko": "JSON 형식이 잘못되었습니다: {reason}",
        "en": "Malformed JSON: {reason}",
    },
    "shot.not_object": {
        "ko": 'JSON 샷은 특징 이름을 키로 하는 객체여야 합니다 (또는 {{"features": {{...}}}})',
        "en": 'A JSON shot must be an object keyed by feature name (or {{"features": {{...}}}})',
    },
    "shot.unknown": {"ko": "알 수 없는 특징: {fields}", "en": "Unknown features: {fields}"},
    "shot.missing": {
        "ko": "빠진 특징(현재 값 유지): {fields}",
        "en": "Missing features (kept as they were): {fields}",
    },
    "shot.bad_value": {
        "ko": "{field}: 숫자가 아닌 값 {value}",
        "en": "{field}: {value} is not a number",
    },
    # Analysis
    "analysis.none": {
        "ko": "먼저 예측 탭에서 샷을 예측하세요.",
        "en": "Predict a shot in the Predict tab first.",
    },
    "analysis.run": {"ko": "SHAP 분석 실행", "en": "Explain this shot"},
    "analysis.chart": {"ko": "특징 기여도 (SHAP)", "en": "Feature attributions (SHAP)"},
    "analysis.kind": {"ko": "차트", "en": "Chart"},
    "analysis.bar": {"ko": "막대", "en": "Bar"},
    "analysis.waterfall": {"ko": "폭포", "en": "Waterfall"},
    "analysis.top": {"ko": "상위 10개 특징", "en": "Top 10 features"},
    "analysis.reading": {"ko": "해석", "en": "Reading"},
    "analysis.col.feature": {"ko": "특징", "en": "Feature"},
    "analysis.col.value": {"ko": "값", "en": "Value"},
    "analysis.col.normal": {"ko": "정상 범위", "en": "Normal range"},
    "analysis.col.status": {"ko": "상태", "en": "Status"},
    "analysis.col.attribution": {"ko": "기여도", "en": "Attribution"},
    "analysis.status.low": {"ko": "낮음", "en": "below"},
    "analysis.status.high": {"ko": "높음", "en": "above"},
    "analysis.status.normal": {"ko": "정상", "en": "normal"},
    "analysis.base": {"ko": "기준값", "en": "base value"},
    "analysis.final": {"ko": "예측값", "en": "prediction"},
    "analysis.read.head": {
        "ko": "불량 확률 {probability:.1%} (기준 {base:.1%}).",
        "en": "Defect probability {probability:.1%} (base {base:.1%}).",
    },
    "analysis.read.up": {
        "ko": "확률을 가장 많이 올린 특징: {items}.",
        "en": "Pushed the probability up most: {items}.",
    },
    "analysis.read.down": {
        "ko": "확률을 낮춘 특징: {items}.",
        "en": "Pulled it down: {items}.",
    },
    "analysis.read.abnormal": {
        "ko": "정상 범위를 벗어난 상위 특징: {items}.",
        "en": "Top features outside their normal range: {items}.",
    },
    "analysis.read.all_normal": {
        "ko": "상위 특징은 모두 정상 범위 안에 있습니다.",
        "en": "Every top feature lies within its normal range.",
    },
    # Assistant
    "assistant.context": {
        "ko": "현재 샷을 맥락으로 사용합니다 ({summary}).",
        "en": "The current shot is the context ({summary}).",
    },
    "assistant.no_context": {
        "ko": "현재 샷이 없습니다: 일반 질문으로 답합니다.",
        "en": "No current shot: questions are answered without one.",
    },
    "assistant.prompt": {
        "ko": "질문을 입력하세요 (예: 기공 불량의 원인은?)",
        "en": "Ask a question (e.g. what causes gas porosity?)",
    },
    "assistant.sources": {"ko": "출처", "en": "Sources"},
    "assistant.recommendations": {"ko": "권장 조치", "en": "Recommendations"},
    "assistant.failed": {
        "ko": "답변을 받지 못했습니다: {reason}",
        "en": "No answer: {reason}",
    },
    "assistant.clear": {"ko": "대화 지우기", "en": "Clear the chat"},
    # History
    "history.window": {"ko": "기간", "en": "Time window"},
    "history.window.1h": {"ko": "최근 1시간", "en": "Last hour"},
    "history.window.24h": {"ko": "최근 24시간", "en": "Last 24 hours"},
    "history.window.7d": {"ko": "최근 7일", "en": "Last 7 days"},
    "history.window.30d": {"ko": "최근 30일", "en": "Last 30 days"},
    "history.window.all": {"ko": "전체", "en": "All"},
    "history.versions": {"ko": "모델 버전", "en": "Model versions"},
    "history.all_versions": {"ko": "전체 버전", "en": "All versions"},
    "history.empty": {
        "ko": "기록된 예측이 없습니다 ({path}).",
        "en": "No logged predictions ({path}).",
    },
    "history.count": {"ko": "예측 {n}건", "en": "{n} predictions"},
    "history.defect_rate": {"ko": "불량률", "en": "Defect rate"},
    "history.over_time": {"ko": "시간별 예측", "en": "Predictions over time"},
    "history.by_hour": {"ko": "시간대별 불량률", "en": "Defect rate by hour"},
    "history.by_day": {"ko": "일별 불량률", "en": "Defect rate by day"},
    "history.by_version": {"ko": "버전별 요약", "en": "Per version"},
    "history.quality": {"ko": "실제 품질 (라벨 도착분)", "en": "Realised quality (labelled)"},
    "history.no_labels": {
        "ko": "아직 도착한 라벨이 없습니다.",
        "en": "No labels have arrived yet.",
    },
    "history.drift": {"ko": "최근 드리프트 보고서", "en": "Latest drift report"},
    "history.no_drift": {"ko": "드리프트 보고서가 없습니다.", "en": "No drift report yet."},
    "history.drift_status": {
        "ko": "상태 {status} · 버전 {version} · 드리프트 비율 {share} · {at}",
        "en": "status {status} · version {version} · drift share {share} · {at}",
    },
    "history.drifted": {"ko": "드리프트된 특징: {items}", "en": "Drifted features: {items}"},
    "history.no_drifted": {"ko": "드리프트된 특징 없음", "en": "No drifted feature"},
    "history.report_link": {"ko": "Evidently 보고서 열기", "en": "Open the Evidently report"},
    "history.col.version": {"ko": "버전", "en": "Version"},
    "history.col.count": {"ko": "건수", "en": "Predictions"},
    "history.col.defect_rate": {"ko": "불량률", "en": "Defect rate"},
    "history.col.mean_probability": {"ko": "평균 확률", "en": "Mean probability"},
    "history.col.labelled": {"ko": "라벨 수", "en": "Labelled"},
    "history.col.accuracy": {"ko": "정확도", "en": "Accuracy"},
    "history.col.precision": {"ko": "정밀도", "en": "Precision"},
    "history.col.recall": {"ko": "재현율", "en": "Recall"},
    "history.col.actual_rate": {"ko": "실제 불량률", "en": "Actual defect rate"},
    # Models
    "models.registered": {"ko": "등록된 버전", "en": "Registered versions"},
    "models.none": {"ko": "등록된 버전이 없습니다.", "en": "No registered version."},
    "models.open": {
        "ko": "MLflow에서 열기 (승격은 여기서)",
        "en": "Open in MLflow (promote there)",
    },
    "models.col.version": {"ko": "버전", "en": "Version"},
    "models.col.aliases": {"ko": "별칭", "en": "Aliases"},
    "models.col.gate": {"ko": "게이트 판정", "en": "Gate verdict"},
    "models.col.reason": {"ko": "학습 사유", "en": "Reason"},
    "models.col.data": {"ko": "학습 데이터", "en": "Training data"},
    "models.col.created": {"ko": "생성 시각", "en": "Created"},
    "models.col.link": {"ko": "MLflow", "en": "MLflow"},
}


def pick_language(
    accept_language: str | None, locale: str | None = None, fallback: Language = "en"
) -> Language:
    """Korean when the browser prefers it over English, English when it prefers that.

    `Accept-Language` ranks by q-value (RFC 9110 §12.5.4); without the header the
    browser's own locale decides. Only ko and en are offered, so the first of those two
    in the browser's order wins; a browser that names neither gets `fallback` (the
    deployment's setting).
    """
    ranked = _ranked(accept_language) if accept_language else []
    if locale:
        ranked.append(locale)
    for tag in ranked:
        primary = tag.split("-")[0].strip().lower()
        if primary in ("ko", "en"):
            return "ko" if primary == "ko" else "en"
    return fallback


def _ranked(header: str) -> list[str]:
    weighted: list[tuple[float, int, str]] = []
    for order, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, order, tag))
    return [tag for _, _, tag in sorted(weighted)]


def t(key: str, language: Language, **values: object) -> str:
    """The string `key` in `language`, formatted with `values`."""
    text = STRINGS[key][language]
    return text.format(**values)
