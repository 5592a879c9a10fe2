"""Synthetic Vietnamese news items for fast model tests (no shared data needed)."""

from __future__ import annotations

import random

NEG = [
    "tai nạn giao thông khiến hai người tử vong",
    "cháy lớn thiêu rụi nhà xưởng",
    "khởi tố vụ tham nhũng đất đai",
    "người dân bức xúc vì ô nhiễm nghiêm trọng",
    "dự án chậm tiến độ gây thiệt hại",
    "bắt giữ đối tượng lừa đảo",
    "sạt lở đất làm hư hỏng đường",
    "xử phạt doanh nghiệp vi phạm môi trường",
]
POS = [
    "khánh thành cầu mới phục vụ người dân",
    "thông xe tuyến đường sớm hơn kế hoạch",
    "kinh tế tăng trưởng vượt chỉ tiêu",
    "bệnh nhân khỏi bệnh được xuất viện",
    "nông dân được mùa, giá lúa cao",
    "học sinh đạt giải nhất kỳ thi quốc gia",
    "trao tặng nhà tình nghĩa cho gia đình chính sách",
    "thủ tục hành chính được rút ngắn",
]
NEU = [
    "tỉnh họp bàn kế hoạch năm tới",
    "sở công bố lịch tiếp dân tháng này",
    "dự kiến sẽ xây dựng trường học mới",
    "đề xuất điều chỉnh quy hoạch khu đô thị",
    "thời tiết ngày mai có mưa rào",
    "hội nghị thảo luận dự thảo luật",
    "ủy ban phê duyệt quy hoạch chi tiết",
    "cơ quan đặt mục tiêu số hóa hồ sơ",
]
PLACES = ["Phủ Lý", "Duy Tiên", "Kim Bảng", "Thanh Liêm", "Bình Lục", "Lý Nhân"]
TOPIC = {
    "negative": "security_order",
    "positive": "economy_investment",
    "neutral": "public_services_admin",
}


def items(n: int = 120, seed: int = 0, prefix: str = "syn") -> list[dict]:
    rng = random.Random(seed)
    out = []
    pools = {"negative": NEG, "positive": POS, "neutral": NEU}
    for i in range(n):
        label = ("negative", "neutral", "positive")[i % 3]
        head = rng.choice(pools[label])
        lead = rng.choice(pools[label])
        place = rng.choice(PLACES)
        text = f"{place.upper()[0]}{place[1:]}: {head[0].upper()}{head[1:]}. Tại huyện {place}, {lead}."
        out.append({"id": f"{prefix}-{i:04d}", "text": text, "label": label, "topic": TOPIC[label]})
    return out
